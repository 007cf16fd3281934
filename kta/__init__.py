"""The top of the house: the ``kta`` command and the supervisor that runs every service (``kta up``).

Nothing below (``shared/``, the workers, the gateway, ``kite_sim``) imports from here."""
