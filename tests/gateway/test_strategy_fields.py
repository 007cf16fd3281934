"""The add-strategy form's fields drawn once per catalog entry (``page_context.empty_fields``): the panel
with them is the panel the template draws, for every strategy, and a new catalog draws them again."""

from __future__ import annotations

import msgspec

from gateway.page_context import empty_fields
from gateway.templating import environment
from strategy_worker.strategies import registry


def catalog() -> list[dict]:
    """The catalog as the gateway holds it: decoded from the strategy worker's reply."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(registry.catalog()))


def test_the_drawn_once_fields_are_the_templates_own_for_every_strategy():
    panel = environment().get_template("partials/strategies.html")
    entries = catalog()
    for spec in entries:
        context = dict(catalog=entries, catalog_error="", strategies=[], strategies_error="", live=False, spec=spec,
                       selected=spec["name"], values={}, errors={}, added="", symbols="", user_id="U", csrf="c")
        drawn = panel.render(**context, fields_html="")
        assert panel.render(**context, fields_html=empty_fields(spec)) == drawn, spec["name"]
        assert f'id="param-{spec["params"][0]["name"]}"' in drawn
        assert empty_fields(spec) is empty_fields(spec)  # once per catalog entry


def test_a_new_catalog_draws_them_again():
    old, new = catalog()[0], catalog()[0]
    new["params"][0]["default"] = 12345
    assert "12345" not in empty_fields(old) and 'value="12345"' in empty_fields(new)
