"""The one exception type that the command line turns into a single clear line."""


class UserError(Exception):
    """Bad input from the user: a file, a setting or a run that cannot be used.

    The message is one line that names the file or setting, says what is wrong and
    how to fix it. The CLI prints it as ``latentlive: error: <message>`` and exits 2,
    without a traceback and without writing anything.
    """
