"""Dashboard service: a live web page (book, candles, spread, orders, feed health) fed from the topics."""
