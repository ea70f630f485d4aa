"""Which entities a meter gets in Home Assistant, and which are enabled by default (pure)."""

from __future__ import annotations

import pytest

from bridge.homeassistant.entities import (
    LAST_COMMAND_ATTRIBUTES,
    LAST_COMMAND_TEMPLATE,
    Component,
    MeterContext,
    MeterTopics,
    components,
    meter_entities,
)
from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.commands import system_type_hint
from bridge.meters.series4000.setup import decode_setup
from bridge.model.quantities import BY_KEY, Visibility
from bridge.model.topics import Topics

T = Topics()
ENTITIES = meter_entities(PROFILE)


def meter(system_type: int, allow_writes: bool = False, allow_resets: bool = False,
          pulse_linked: bool = False) -> dict[str, Component]:
    ctx = MeterContext(system_type, PROFILE.valid_keys(system_type), allow_writes, allow_resets,
                       pulse_linked)
    return components(ENTITIES, ctx, lambda key: f"uid_{key}",
                      MeterTopics(T.state("m"), T.result("m"), lambda key: T.set("m", key)))


def enabled(comps: dict[str, Component]) -> set[str]:
    return {k for k, c in comps.items() if c.config.get("enabled_by_default", True)}


def test_a_single_phase_meter_shows_what_a_household_needs() -> None:
    assert enabled(meter(10)) == {
        "energy_kwh", "reactive_energy_kvarh", "apparent_energy_kvah", "power_w",
        "reactive_power_var", "apparent_power_va", "power_factor", "frequency_hz",
        "voltage_an_v", "current_a", "demand_power_w", "max_demand_power_w", "read_errors",
        "problem", "phase_loss_a", "last_command", "wiring_problem"}


@pytest.mark.parametrize(("system_type", "repeated", "kept"), [
    (10, {"power_a_w", "current_a_a", "energy_a_kwh", "power_factor_a", "voltage_ln_v",
          "reactive_power_a_var", "apparent_power_a_va"}, {"power_w", "voltage_an_v"}),
    (11, {"current_a_a", "energy_a_kwh", "voltage_ll_v"}, {"voltage_ab_v", "current_a"}),
    (12, {"voltage_ll_v"}, {"voltage_ab_v", "voltage_ln_v", "power_a_w", "power_b_w"}),
    (31, set(), {"voltage_ll_v", "current_a_a"}),
    (40, set(), {"voltage_ll_v", "voltage_ln_v", "power_a_w", "energy_a_kwh"}),
])
def test_values_that_repeat_another_get_no_entity(system_type: int, repeated: set[str],
                                                  kept: set[str]) -> None:
    comps = meter(system_type)
    assert repeated <= PROFILE.repeated_keys(system_type)
    assert not repeated & comps.keys()
    assert kept <= comps.keys()


@pytest.mark.parametrize("system_type", sorted(s4k.SYSTEM_TYPES))
@pytest.mark.parametrize("allow_writes", [False, True])
def test_specialist_entities_exist_but_start_disabled(system_type: int,
                                                      allow_writes: bool) -> None:
    comps = meter(system_type, allow_writes)
    on = enabled(comps)
    specialist = {q.key for q in BY_KEY.values() if q.visibility is not Visibility.PRIMARY}
    specialist |= {b.key for b in s4k.ALARM_BITS if b.visibility is not Visibility.PRIMARY}
    assert not on & specialist
    assert specialist & comps.keys()  # created, one click away
    if not allow_writes:  # a read-only meter's set-up: looked up, not watched
        assert not on & {s.key for s in s4k.SETTINGS}
    assert {"problem", "last_command"} <= on
    assert not comps["problem"].config.get("entity_category")
    phase_loss = {f"phase_loss_{p}" for p in s4k.SYSTEM_TYPES[system_type].voltage_phases}
    assert phase_loss <= on
    assert all("entity_category" not in comps[k].config for k in phase_loss)


def test_a_linked_pulse_input_enables_the_pulse_output_group() -> None:
    pulse = {"pulse_count", "pulse_closure_ms", "set_pulse_wh", "reset_pulse_counters"}
    assert not enabled(meter(40, allow_writes=True)) & pulse
    assert pulse <= enabled(meter(40, allow_writes=True, pulse_linked=True))


@pytest.mark.parametrize(("allow_writes", "allow_resets", "present"), [
    (False, False, set()), (False, True, set()),
    (True, False, {"new_demand_interval", "reset_pulse_counters"}),
    (True, True, {"new_demand_interval", "reset_pulse_counters", "reset_energy",
                  "reset_max_demand"}),
])
def test_resets_need_allow_resets_and_start_disabled(allow_writes: bool, allow_resets: bool,
                                                     present: set[str]) -> None:
    comps = meter(40, allow_writes, allow_resets)
    buttons = {k for k, c in comps.items() if c.platform == "button"}
    assert buttons == present
    assert not enabled(comps) & {"reset_energy", "reset_max_demand"}


def test_problem_reads_alarms_and_wiring_findings() -> None:
    problem = meter(40)["problem"].config
    assert "value_json.get('alarms', [])" in problem["value_template"]
    assert "value_json.get('wiring', [])" in problem["value_template"]
    # The wiring faults the Wiring problem entity shows (a finding that only informs is none).
    wiring = meter(40)["wiring_problem"].config["value_template"]
    faults = wiring[wiring.index(" if ") + 4:wiring.index(" else ")]
    assert faults in problem["value_template"]
    assert all(code in faults for code in PROFILE.wiring_info_codes)
    assert problem["device_class"] == "problem"
    assert problem["json_attributes_topic"] == T.state("m")


def test_last_command_follows_the_result_topic() -> None:
    last = meter(10)["last_command"].config
    assert last["state_topic"] == last["json_attributes_topic"] == T.result("m")
    assert last["value_template"] == LAST_COMMAND_TEMPLATE
    # One word as the state, so that the device page shows the name whole; the command and
    # the reason of a refusal are attributes.
    assert "'refused'" in LAST_COMMAND_TEMPLATE and "~" not in LAST_COMMAND_TEMPLATE
    assert last["json_attributes_template"] == LAST_COMMAND_ATTRIBUTES
    assert "reason=value_json.error" in LAST_COMMAND_ATTRIBUTES
    assert last["entity_category"] == "diagnostic"


def test_settings_have_short_names_units_and_device_classes() -> None:
    controls = meter(40, allow_writes=True)
    assert all(len(s.name) <= 20 for s in s4k.SETTINGS), [s.name for s in s4k.SETTINGS]
    assert controls["set_pulse_wh"].config["options"] == ["10 Wh", "100 Wh", "1 kWh", "10 kWh"]
    assert "{1000: '1 kWh'" in controls["set_pulse_wh"].config["value_template"].replace(
        "10: '10 Wh', 100: '100 Wh', ", "")
    assert controls["set_system_voltage_v"].config["device_class"] == "voltage"
    assert controls["set_ct_primary_a"].config["device_class"] == "current"
    assert controls["set_demand_subinterval_s"].config["device_class"] == "duration"
    assert "unit_of_measurement" not in controls["pulse_count"].config


def setup_with(system_type: int, system_voltage_v: int) -> object:
    words = [0] * s4k.CONFIG_READ.count
    start = s4k.CONFIG_READ.start
    words[s4k.REG_SYSTEM_TYPE - start] = system_type
    words[134 - start] = system_voltage_v
    words[133 - start] = 100
    return decode_setup(words)


@pytest.mark.parametrize(("old", "new", "voltage", "hint"), [
    (40, 10, 398, "system voltage 398 V is a line-to-line value and type 10 takes "
                  "line-to-neutral: set system_voltage_v to 230 next"),
    (12, 10, 240, "system voltage 240 V is a line-to-line value and type 10 takes "
                  "line-to-neutral: set system_voltage_v to 120 next"),
    (10, 40, 230, "system voltage 230 V is a line-to-neutral value and type 40 takes "
                  "line-to-line: set system_voltage_v to 398 next"),
    (10, 12, 120, "system voltage 120 V is a line-to-neutral value and type 12 takes "
                  "line-to-line: set system_voltage_v to 240 next"),
    (40, 31, 398, None), (12, 40, 240, None), (10, 10, 230, None),
])
def test_a_system_type_change_says_which_system_voltage_fits(
        old: int, new: int, voltage: int, hint: str | None) -> None:
    before, after = setup_with(old, voltage), setup_with(new, voltage)
    assert system_type_hint(before, after) == hint  # type: ignore[arg-type]
