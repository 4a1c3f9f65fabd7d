"""A team's own model on StakeLearn: a small convolutional network on the 8x8 digits that ship
with scikit-learn, trained by a Flower app whose rounds are proven and settled on chain."""
