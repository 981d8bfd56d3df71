"""Export to TorchScript for nn~: wrappers, streaming build, contract checks, host harness, report."""
