import pytest

from shared import subjects as s


@pytest.mark.parametrize("bad", ["", "a", "demo01", "DEMO.01", "DEMO*", ">", "ABCDEFGHIJK", "DE MO", None, 12])
def test_bad_user_ids_are_refused(bad):
    with pytest.raises(s.SubjectError):
        s.signals(bad)


def test_subject_scheme():
    assert s.ticks(256265) == "kta.ticks.256265"
    assert s.bars("5minute", 1) == "kta.bars.5minute.1"
    assert s.cmd("DEMO01", "strategy", "add") == "kta.u.DEMO01.cmd.strategy.add"
    assert s.signals("AB12") == "kta.u.AB12.signals"
    assert s.order_updates("AB12") == "kta.u.AB12.broker.order_updates"
    assert s.user_of("kta.u.AB12.cmd.strategy.add") == "AB12"
    assert s.verb_of("kta.u.AB12.cmd.strategy.add") == "add"


@pytest.mark.parametrize("bad", [-1, 2**32, True, "5"])
def test_bad_tokens_are_refused(bad):
    with pytest.raises(s.SubjectError):
        s.ticks(bad)


def test_bad_words_are_refused():
    with pytest.raises(s.SubjectError):
        s.cmd("DEMO01", "strategy.*", "add")
    with pytest.raises(s.SubjectError):
        s.bars("5 minute", 1)


def test_wildcards_come_from_the_same_builders() -> None:
    assert s.signals(s.ANY) == "kta.u.*.signals"
    assert s.broker(s.ANY, s.ANY) == "kta.u.*.broker.*"
    assert s.user_ticks(s.ANY, s.ANY) == "kta.u.*.ticks.*"
    assert s.cmd_wildcard("live") == s.cmd(s.ANY, "live", s.ANY) == "kta.u.*.cmd.live.*"
    assert s.commands(s.ANY) == "kta.u.*.cmd.>" and s.everything("AB12") == "kta.u.AB12.>"


def test_no_text_can_stand_for_the_wildcard() -> None:
    for hostile in ("*", ">", "AB12.*"):
        with pytest.raises(s.SubjectError):
            s.signals(hostile)
    with pytest.raises(s.SubjectError):
        s.ticks("*")
