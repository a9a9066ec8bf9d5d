"""The speed policy (toolkit/train/speed.py): which switches a run trains with, how it decides, what it caches."""

import json

import pytest
import torch

from toolkit.train import speed
from toolkit.train.config import TrainConfig
from toolkit.train.loop import train
from toolkit.train.speed import Choice

CPU = torch.device("cpu")
LONG = 10_000  # steps: long enough to time the candidates (short of the compile threshold with fast fakes)


def cfg(model="fast-cnn", **kw) -> TrainConfig:
    return TrainConfig(model=model, dataset="synthetic", **kw).resolved()


def fake_timer(seconds: dict[Choice, float], calls: list | None = None):
    def time_steps(choices):
        if calls is not None:
            calls.append(list(choices))
        return {c: seconds[c] for c in choices if c in seconds}, {}

    return time_steps


def never_compile(choice):
    raise AssertionError("compiling was timed")


def compiled(step_s: float, compile_s: float, eager_s: float, spread: float = 1.0):
    """A compile timer whose alternating rounds give compiled `step_s` against eager `eager_s`."""
    ratio = step_s / eager_s
    ratios = (ratio, ratio * spread, ratio, ratio, ratio)
    return lambda choice: speed.CompileTiming(step_s, compile_s, eager_s, ratios)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test starts with an empty cache of its own."""
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU that computes bf16 natively, whatever this machine is."""
    monkeypatch.setattr(speed, "native_half_precisions", lambda device: ("bf16",))


@pytest.mark.parametrize("faster", [Choice("off", True), Choice("bf16", False)])
def test_the_faster_of_two_timings_wins_and_is_cached(native_bf16, faster):
    c = cfg(batch_size=100 + hash(faster.label) % 100, compile=False)  # a key of its own per case
    timings = {
        Choice("off", False): 0.5,
        Choice("off", True): 0.4,
        Choice("bf16", False): 0.4,
        Choice("bf16", True): 0.6,
    }
    timings[faster] = 0.1
    calls = []
    d = speed.decide(c, CPU, LONG, fake_timer(timings, calls), never_compile)
    assert d.choice == faster and d.how == "timed" and len(calls) == 1
    assert d.step_seconds[faster.label] == 0.1 and faster.label in d.line()
    # The same key again decides from the cache, without timing anything.
    again = speed.decide(c, CPU, LONG, fake_timer(timings, calls), never_compile)
    assert again.choice == faster and again.how == "cached" and len(calls) == 1


def test_the_cache_is_keyed_by_machine_model_batch_threads_and_torch(native_bf16, monkeypatch):
    c = cfg(batch_size=64, compile=False)
    key = speed.cache_key(c, CPU, speed.candidates(c, CPU))
    assert {"device", "model", "dataset", "batch_size", "threads", "torch", "world_size", "candidates"} <= set(key)
    assert key["device"].startswith("cpu: ") and key["torch"] == torch.__version__
    speed.write_cache(key, {"step_seconds": {"x": 1.0}})
    assert json.loads(speed.cache_path(key).read_text())["key"] == key
    for other in (
        speed.cache_key(cfg(batch_size=65, compile=False), CPU, speed.candidates(c, CPU)),
        speed.cache_key(cfg(model="resnet20", batch_size=64, compile=False), CPU, speed.candidates(c, CPU)),
        {**key, "torch": "0.0"},
        {**key, "threads": key["threads"] + 1},
        {**key, "device": "cpu: another CPU"},
    ):
        assert speed.read_cache(other) is None
    assert speed.read_cache(key)["step_seconds"] == {"x": 1.0}


def test_a_recipe_that_forbids_low_precision_never_gets_it(native_bf16):
    c = cfg(model="resnet20", batch_size=32, compile=False)
    assert c.amp_allowed == ()
    assert {ch.amp for ch in speed.candidates(c, CPU)} == {"off"}
    calls = []
    d = speed.decide(
        c, CPU, LONG, fake_timer({Choice("off", False): 0.3, Choice("off", True): 0.2}, calls), never_compile
    )
    assert d.choice.amp == "off" and all(ch.amp == "off" for ch in calls[0])
    # Asked for explicitly, it is taken: that is not silent.
    assert speed.candidates(cfg(model="resnet20", amp="bf16"), CPU) == [Choice("bf16", False), Choice("bf16", True)]


def test_low_precision_is_a_candidate_only_where_native(monkeypatch):
    monkeypatch.setattr(speed, "native_half_precisions", lambda device: ())
    assert {ch.amp for ch in speed.candidates(cfg(), CPU)} == {"off"}


def test_an_override_wins_and_is_not_timed(native_bf16):
    d = speed.decide(cfg(amp="off", channels_last=True, compile=False), CPU, LONG, fake_timer({}), never_compile)
    assert d.choice == Choice("off", True, False) and d.how == "given"
    # One switch given: only the others are timed.
    calls = []
    timings = {Choice("bf16", True): 0.2, Choice("off", True): 0.3}
    d = speed.decide(
        cfg(channels_last=True, compile=False, batch_size=77), CPU, LONG, fake_timer(timings, calls), never_compile
    )
    assert d.choice == Choice("bf16", True) and all(ch.channels_last for ch in calls[0])


def test_with_only_compile_left_to_decide_the_one_eager_candidate_is_timed_for_it(native_bf16, monkeypatch):
    monkeypatch.setattr(speed, "compile_unavailable_reason", lambda: None)
    calls = []
    d = speed.decide(
        cfg(amp="off", channels_last=True, batch_size=44),
        CPU,
        2000,
        fake_timer({Choice("off", True): 0.5}, calls),
        compiled(0.3, 50.0, 0.5),  # saves 400 s for 50 s of compiling
    )
    assert calls == [[Choice("off", True)]] and d.choice == Choice("off", True, True) and d.how == "timed"


def test_a_short_run_is_not_timed_and_takes_the_best_prior(native_bf16):
    # No timing to go on: the layout that wins for conv nets, fp32 (numerics change only where timed), eager.
    d = speed.decide(cfg(batch_size=33), CPU, 5, fake_timer({}), never_compile)
    assert d.how == "prior" and d.choice == Choice("off", True, False) and "too short" in d.line()
    assert "channels_last: the layout that wins for conv nets on cpu" in d.line()
    # The same model timed at another batch size on this machine: its fastest candidate, not a guess.
    timings = {
        Choice("off", False): 0.2,
        Choice("off", True): 0.4,
        Choice("bf16", False): 0.3,
        Choice("bf16", True): 0.5,
    }
    speed.decide(cfg(batch_size=256, compile=False), CPU, LONG, fake_timer(timings), never_compile)
    d = speed.decide(cfg(batch_size=33), CPU, 5, fake_timer({}), never_compile)
    assert d.how == "prior" and d.choice == Choice("off", False, False)
    assert "from the timings cached for batch 256 on synthetic" in d.line()
    # Another model's timings say nothing about this one.
    other = speed.decide(cfg(model="resnet20", batch_size=33), CPU, 5, fake_timer({}), never_compile)
    assert other.choice == Choice("off", True, False)


def test_compile_is_chosen_only_when_it_repays(native_bf16, monkeypatch):
    monkeypatch.setattr(speed, "compile_unavailable_reason", lambda: None)
    timings = {
        Choice("off", False): 1.0,
        Choice("off", True): 0.5,
        Choice("bf16", False): 0.9,
        Choice("bf16", True): 0.8,
    }
    timed = []

    def time_compiled(choice):
        timed.append(choice)
        return compiled(0.4, 100.0, 0.5)(choice)  # 0.1 s a step saved, 100 s to compile

    long_run = speed.decide(cfg(batch_size=41), CPU, 2000, fake_timer(timings), time_compiled)
    assert long_run.choice == Choice("off", True, True) and timed == [Choice("off", True)]
    assert long_run.compile == {"step_s": 0.4, "compile_s": 100.0, "eager_step_s": 0.5, "ratios": [0.8] * 5}
    # 800 steps save 80 s: less than the compile costs. The cached compile timing decides; nothing is re-timed.
    shorter = speed.decide(cfg(batch_size=41), CPU, 800, fake_timer(timings), never_compile)
    assert shorter.choice == Choice("off", True, False) and "not compiled" in shorter.line()
    # Below the threshold the compiler is not even tried.
    short = speed.decide(cfg(batch_size=42), CPU, 100, fake_timer(timings), never_compile)
    assert short.choice == Choice("off", True, False) and "too short to repay compiling" in short.line()
    # Compiled steps slower than eager (fast-cnn on this CPU): never chosen, and the line says why.
    slower = speed.decide(cfg(batch_size=45), CPU, 10**6, fake_timer(timings), compiled(0.6, 1.0, 0.5))
    assert slower.choice == Choice("off", True, False) and "compiled steps were slower (0.6 vs 0.5 s" in slower.line()


def test_compile_is_judged_against_eager_steps_timed_beside_it_and_noise_is_not_cached(native_bf16, monkeypatch):
    # Eager was once timed at 5.66 s a step on a busy machine and compiled at 0.61 s minutes later: "compiling
    # saves 7,899 s", cached for every later run. The eager step that counts is the one timed between compiled
    # ones; rounds that disagree decide nothing and leave nothing in the cache.
    monkeypatch.setattr(speed, "compile_unavailable_reason", lambda: None)
    timings = {
        Choice("off", False): 5.66,
        Choice("off", True): 6.0,
        Choice("bf16", False): 7.0,
        Choice("bf16", True): 7.0,
    }
    calm = speed.decide(cfg(batch_size=47), CPU, 2000, fake_timer(timings), compiled(0.61, 60.0, 0.6))
    assert calm.choice == Choice("off", False, False) and "compiled steps were slower (0.61 vs 0.6 s" in calm.line()
    busy = speed.decide(cfg(batch_size=48), CPU, 2000, fake_timer(timings), compiled(0.61, 60.0, 5.66, spread=3.0))
    assert busy.choice == Choice("off", False, False) and "disagreed across rounds" in busy.line()
    assert "not cached" in busy.line()
    timed = []
    again = speed.decide(
        cfg(batch_size=48), CPU, 2000, fake_timer(timings), lambda c: timed.append(c) or compiled(0.3, 1.0, 0.6)(c)
    )
    assert timed == [Choice("off", False)] and again.choice == Choice("off", False, True)  # timed afresh


def test_a_candidate_that_fails_is_left_out_with_its_reason(native_bf16):
    def time_steps(choices):
        return {Choice("off", True): 0.3}, {Choice("bf16", True): "oneDNN has no kernel"}

    d = speed.decide(cfg(batch_size=43, compile=False), CPU, LONG, time_steps, never_compile)
    assert d.choice == Choice("off", True) and "oneDNN has no kernel" in d.line()


SMALL = dict(dataset="synthetic", limit_train=256, limit_test=64, batch_size=32, epochs=1, eval_batch_size=64)


def test_the_choice_is_recorded_and_a_resume_reuses_it(tmp_path, monkeypatch):
    """The real probe times resnet20 here (the run is made long enough), records the choice, and a resume
    keeps it without timing again, even when the cache would now say otherwise."""
    monkeypatch.setattr(speed, "DECIDE_MIN_RATIO", 0)
    r = train(model="resnet20", out=str(tmp_path), run_name="r", compile=False, **SMALL)
    s = r.summary
    assert s["speed"]["how"] == "timed" and s["speed"]["asked"]["amp"] == "auto"
    assert set(s["speed"]["step_seconds"]) == {"fp32, contiguous, eager", "fp32, channels_last, eager"}
    chosen = Choice(**s["speed"]["choice"])
    assert (s["amp"], s["channels_last"], s["compiled"]) == (chosen.amp, chosen.channels_last, False)
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert ckpt["speed"]["choice"] == s["speed"]["choice"]
    assert ckpt["train_config"]["channels_last"] is chosen.channels_last

    def no_timing(*a, **k):
        raise AssertionError("a resume must not time")

    monkeypatch.setattr(speed, "decide", no_timing)
    resumed = train(resume=tmp_path / "r", epochs=2).summary
    assert resumed["speed"]["how"] == "resumed" and resumed["channels_last"] is chosen.channels_last
    assert resumed["speed"]["asked"]["amp"] == "auto"
