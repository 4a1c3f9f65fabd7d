"""StakeLearn's digits task as a Flower app."""
