"""The compiled decode plan gives what the codec gives, published form included, for every row;
a reply that does not decode counts towards ``offline_after``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from bridge.errors import DecodeError
from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.modbus.reader import decode_answers
from bridge.model.decode_plan import compile_plan
from bridge.model.quantities import rounded
from bridge.model.registers import ReadBlock, plan_reads
from bridge.model.values import Number, sanitize
from bridge.sim.model import SimulatedMeter
from tests.test_poller import Clock, ImageClient, make_poller, meter, run_until

SYSTEM_TYPES = (10, 11, 12, 31, 40)
#: The integer block's keyed rows: 16-bit signed and unsigned, 32-bit accumulators, scaled.
INTEGER_PLAN = plan_reads([r for r in s4k.INTEGER_BLOCK if r.key])


def codec_published(answers: Sequence[tuple[ReadBlock, Sequence[int]]],
                    scales: Mapping[int, int]) -> dict[str, Number | None]:
    """Today's path: the codec's values, then the published rounding of ``sanitize``."""
    return {k: rounded(k, v) if isinstance(v, float) else v
            for k, v in decode_answers(answers, scales).items()}


def answers_for(image: Mapping[int, int],
                blocks: Sequence[ReadBlock]) -> list[tuple[ReadBlock, list[int]]]:
    return [(b, [image.get(b.start + i, 0) for i in range(b.count)]) for b in blocks]


@pytest.mark.parametrize("without_neutral", [False, True])
@pytest.mark.parametrize("system_type", SYSTEM_TYPES)
def test_the_compiled_plan_decodes_every_row_like_the_codec(system_type: int,
                                                            without_neutral: bool) -> None:
    sim = SimulatedMeter(1, system_type, per_phase_without_neutral=without_neutral)
    image = sim.registers()
    setup = PROFILE.decode_setup([image[r] for r in range(129, 155)])
    blocks = (*PROFILE.measurement_plan(system_type, include_uncertain=True), *INTEGER_PLAN)
    answers = answers_for(image, blocks)
    compiled = compile_plan(blocks, setup.scales).decode(answers)
    assert compiled == codec_published(answers, setup.scales)
    # The wiring's absent phases read QNAN: not available on either path.
    qnan = {k for k, v in compiled.items() if v is None}
    if system_type != 40:
        assert qnan
    assert set(compiled) == {r.key for b in blocks for r in b.registers if r.key}


FLOAT_POWER = PROFILE.measurement_plan(40)[0]


@pytest.mark.parametrize("words", [
    (0x7FC0, 0x0000),  # QNAN
    (0x7F80, 0x0000),  # +infinity
    (0xFF80, 0x0000),  # -infinity
    (0x0000, 0x0000),
    (0x3DCC, 0xCCCD),  # 0.1 kW
    (0x4640, 0xE6B7),  # 12345.678 kW
    (0xBF80, 0x0000),  # -1 kW
    (0x0000, 0x0001),  # a denormal
])
def test_odd_floats_decode_alike(words: tuple[int, int]) -> None:
    image = {r: 0x4000 for r in range(257, 347)}
    image[261], image[262] = words
    answers = answers_for(image, [FLOAT_POWER])
    assert compile_plan([FLOAT_POWER], {}).decode(answers) == codec_published(answers, {})


@pytest.mark.parametrize(("raw", "scale_w"), [
    (0x8000, -2), (0x7FFF, -4), (1234, -2), (1234, 0), (1234, 3), (0, -1), (0xFFFF, 4),
])
def test_scaled_integers_decode_alike(raw: int, scale_w: int) -> None:
    image = {r: raw for r in range(1, 53)}
    scales = {138: -1, 139: -1, 140: scale_w, 141: scale_w}
    answers = answers_for(image, INTEGER_PLAN)
    assert compile_plan(INTEGER_PLAN, scales).decode(answers) == \
        codec_published(answers, scales)


@pytest.mark.parametrize(("scales", "message"), [
    ({138: -1, 139: -1, 140: 7, 141: 0}, "scale register 140 holds 7, outside -4..4"),
    ({138: -1, 139: -1, 141: 0}, "register 3 needs scale register 140"),
])
def test_a_bad_scale_fails_like_the_codec(scales: dict[int, int], message: str) -> None:
    answers = answers_for({r: 100 for r in range(1, 53)}, INTEGER_PLAN)
    with pytest.raises(DecodeError, match=message):
        decode_answers(answers, scales)
    with pytest.raises(DecodeError, match=message):
        compile_plan(INTEGER_PLAN, scales).decode(answers)
    # QNAN needs no scale: both say "not available".
    qnan = answers_for({r: 0x8000 for r in range(1, 53)}, INTEGER_PLAN)
    assert compile_plan(INTEGER_PLAN, scales).decode(qnan) == codec_published(qnan, scales)


@pytest.mark.parametrize(("words", "message"), [
    ([0] * 5, "read of 90 registers from 257 returned 5"),
    ([0x10000] + [0] * 89, "register value 65536 is not a 16-bit word"),
    ([-1] + [0] * 89, "register value -1 is not a 16-bit word"),
])
def test_a_malformed_reply_is_a_decode_error(words: list[int], message: str) -> None:
    block = PROFILE.measurement_plan(40, include_uncertain=True)[0]
    assert block.count == 90
    with pytest.raises(DecodeError, match=message):
        compile_plan([block], {}).decode([(block, words)])


def test_a_block_outside_the_plan_is_compiled_on_the_spot() -> None:
    sim = SimulatedMeter(1, 40)
    image = sim.registers()
    full = PROFILE.measurement_plan(40)
    halves = plan_reads(full[0].registers, max_count=40)  # as after a refused long read
    answers = answers_for(image, halves)
    assert compile_plan(full, {}).decode(answers) == codec_published(answers, {})


def copied(block: ReadBlock) -> ReadBlock:
    """An equal block that is another object, as a second meter's plan holds."""
    return ReadBlock(block.start, block.count, tuple(block.registers))


@pytest.mark.parametrize(("scales_a", "scales_b", "shared"), [
    ({138: -1, 139: -1, 140: 0, 141: 0}, {138: -1, 139: -1, 140: 0, 141: 0}, True),
    # The same registers in another order: the same scales.
    ({141: 0, 140: 0, 139: -1, 138: -1}, {138: -1, 139: -1, 140: 0, 141: 0}, True),
    ({138: -1, 139: -1, 140: 0, 141: 0}, {138: -1, 139: -1, 140: -2, 141: -2}, False),
])
def test_meters_with_equal_blocks_and_scales_share_one_decoder(
        scales_a: dict[int, int], scales_b: dict[int, int], shared: bool) -> None:
    first = compile_plan(INTEGER_PLAN, scales_a)
    others = tuple(copied(b) for b in INTEGER_PLAN)
    second = compile_plan(others, scales_b)
    for a, b in zip(INTEGER_PLAN, others, strict=True):
        assert (first.blocks[id(a)][1] is second.blocks[id(b)][1]) is shared
    # Each plan decodes its own block objects, with its own scales.
    for plan, blocks, scales in ((first, INTEGER_PLAN, scales_a), (second, others, scales_b)):
        answers = answers_for({r: 1234 for r in range(1, 53)}, blocks)
        assert plan.decode(answers) == codec_published(answers, scales)


def test_an_equal_block_that_is_another_object_decodes_like_the_planned_one() -> None:
    """The reader answers with the plan's own blocks; any other block object (an equal block
    from another meter's plan) is looked up by its rows."""
    image = SimulatedMeter(1, 40).registers()
    plan = compile_plan([FLOAT_POWER], {})
    answers = answers_for(image, [copied(FLOAT_POWER)])
    assert plan.decode(answers) == codec_published(answers, {})


def test_the_never_lower_rule_holds_on_the_compiled_values() -> None:
    sim = SimulatedMeter(1, 40, frozen=True)
    blocks = PROFILE.measurement_plan(40)
    plan = compile_plan(blocks, {})
    first = plan.decode(answers_for(sim.registers(), blocks))
    valid = PROFILE.valid_keys(40)
    clean, floors, dropped = sanitize(first, valid, {})
    assert not dropped and floors["energy_kwh"] == first["energy_kwh"]
    sim.energy_kwh -= 10.0  # the meter's total drops without a reset
    sim.tick(sim.clock() + 1)
    lower = plan.decode(answers_for(sim.registers(), blocks))
    old = codec_published(answers_for(sim.registers(), blocks), {})
    assert lower == old
    clean, _, dropped = sanitize(lower, valid, floors)
    assert "energy_kwh" not in clean
    assert [d.key for d in dropped] == ["energy_kwh"]


class Garbling(ImageClient):
    """Answers full reads with one register too few once ``garble`` is set."""

    garble = False

    async def read_registers(self, unit: int, address: int, count: int, function: int = 3,
                             retries: int | None = None) -> list[int]:
        words = await super().read_registers(unit, address, count, function, retries)
        return words[:-1] if self.garble and count > 50 else words


async def test_a_reply_that_does_not_decode_counts_towards_offline_after() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller([meter("m", 1, poll_interval=1)], clock=clock,
                                          offline_after=3)
    garbling = Garbling(client.meters, clock)
    poller.client = garbling  # type: ignore[assignment]
    rt = poller.meters["m"]
    await run_until(poller, clock, clock.now + 0.1)
    assert rt.online and rt.failures == 0
    garbling.garble = True
    seen: list[tuple[int, bool]] = []
    for _ in range(3):
        await run_until(poller, clock, clock.now + 1.0)  # the meter's next slot
        seen.append((rt.failures, rt.online))
    assert seen == [(1, True), (2, True), (3, False)]
    assert "returned 89" in (rt.last_error or "")

