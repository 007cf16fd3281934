from kite_sim.main import cli

cli()
