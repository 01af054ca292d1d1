"""One router per concern: health, predict, training views, config overrides, model and system admin."""
