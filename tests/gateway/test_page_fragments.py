"""What a dashboard's render does once per process instead of once per load, drawing the same page: the panels
that show nothing of the trader's where the dashboard includes them (``templating.drawn_once``), the live panel's
chips placed as one piece, and a plain dict's keys read without Jinja's AttributeError first."""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from gateway.structures import STRUCTURES
from gateway.templating import TEMPLATES, drawn_once, environment

ONCE = ("partials/chart.html", "partials/ticks.html", "partials/option_chain.html", "partials/options.html")


def test_panels_without_the_traders_data_are_drawn_once_as_the_templates_draw_them():
    env = environment()
    for name in ONCE:  # the dashboard's context: no chain, no scan; the structures are the app's constant
        assert drawn_once(name) == env.get_template(name).render(structures=STRUCTURES, user_id="U", csrf="c"), name
    pair = drawn_once("partials/chart.html", "partials/ticks.html")
    assert pair is drawn_once("partials/chart.html", "partials/ticks.html")  # once per process
    assert pair == drawn_once("partials/chart.html") + drawn_once("partials/ticks.html")
    assert 'id="structure-form"' in drawn_once("partials/options.html") and "iron condor" in drawn_once("partials/options.html")
    dashboard = (TEMPLATES / "dashboard.html").read_text()
    assert not [name for name in ONCE if f'include "{name}"' in dashboard]


def test_the_dashboard_places_them_where_the_includes_were():
    """The page is the same, byte for byte, as with the includes (whitespace too)."""
    env = environment()
    source = (TEMPLATES / "dashboard.html").read_text()
    included = source.replace('{{ drawn_once("partials/chart.html", "partials/ticks.html") -}}\n',
                              '  {% include "partials/chart.html" %}\n  {% include "partials/ticks.html" %}\n')
    included = included.replace('{{ drawn_once("partials/option_chain.html", "partials/options.html") -}}\n',
                                '  {% include "partials/option_chain.html" %}\n  {% include "partials/options.html" %}\n')
    assert included != source
    context = dict(user_id="U", csrf="c", structures=STRUCTURES, status={"broker": {"state": "absent"}, "live": False,
                   "live_tokens": [], "workers": {}, "kill_switch": "ACTIVE"}, catalog=[], strategies=[], picked=[],
                   chips=Markup(""), profile={}, margins={}, holdings=[], signals=[], orders=[], recent_alerts=[])
    assert env.from_string(source).render(context) == env.from_string(included).render(context)


def test_a_dict_rows_keys_are_read_at_once_and_answer_as_before(monkeypatch):
    plain = jinja2.Environment(autoescape=True)
    row = {"name": "ema", "items": [1, 2], "get": "x"}
    source = ("{{ r.name }}|{{ r.missing is defined }}|{{ r.items()|list|length }}|{{ r.get('name') }}|"
              "{{ r['items']|length }}|{{ r.name.upper() }}")
    assert environment().from_string(source).render(r=row) == plain.from_string(source).render(r=row)
    asked: list[str] = []
    jinja_getattr = jinja2.Environment.getattr
    monkeypatch.setattr(jinja2.Environment, "getattr", lambda self, obj, name: asked.append(name) or jinja_getattr(self, obj, name))
    assert environment().from_string("{{ r.name }}{{ r.missing }}").render(r=row) == "ema"
    assert asked == []  # a key, or its absence, without Jinja's getattr-then-item
    assert environment().from_string("{{ r.items()|list|length }}").render(r=row) == "3"
    assert asked == ["items"]  # a dict's own attribute: Jinja's way, the method first
