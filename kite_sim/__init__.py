"""kta: kite_sim."""
