"""Training: gin config, the tasks of every model and the loop that trains them."""
