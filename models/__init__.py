"""Model artifacts, model cards, and the training and export code behind them."""
