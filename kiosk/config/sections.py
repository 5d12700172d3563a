"""The kiosk's config file: its sections and keys, the profiles, and how it becomes Settings.

To add a section: declare a :class:`~kiosk.config.schema.Section`, add it to
:data:`SCHEMA`, add the matching dataclass to :mod:`kiosk.config.settings` and fill it in
:func:`build_settings`, and describe every key in ``docs/configuration.md`` (a test checks
that the document names each key). Defaults come from the Settings dataclasses, so the
defaults of a file and of ``Settings()`` cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from hardware.specs import (
    CARD_READER_DRIVERS,
    ENTRANCE_READER_SPI,
    SIM_ENTRANCE_READER,
    SIMULATED,
    TAG_READER_DRIVERS,
    CardReaderSpec,
    GpioFactory,
    GpioSpec,
    HardwareSpec,
    SecurityMode,
    SecurityPolicy,
    TagReaderSpec,
)
from kiosk.config import daemon, desk, devices, sip2, ui
from kiosk.config.schema import Key, PerProfile, Schema, Section
from kiosk.config.settings import (
    PROFILES,
    CirculationSettings,
    DatabaseSettings,
    DeviceSettings,
    HubSettings,
    OfflineSettings,
    Settings,
    default_database_path,
)
from kiosk.config.types import (
    Bool,
    Choice,
    Int,
    Language,
    Money,
    OptionalPath,
    PathType,
    Str,
    Timezone,
)
from sync.policy import OnLoanToOther, UnknownItem

# A device id becomes part of file names, log lines and hub records: short, lower case.
DEVICE_ID = r"[a-z0-9][a-z0-9-]{1,31}"
# ISO 15511 ISIL: a country or other prefix, a hyphen, then up to 11 characters.
ISIL = r"[A-Z]{1,4}-[A-Za-z0-9:/-]{1,11}"

_device = DeviceSettings()
_tags = TagReaderSpec()
_cards = CardReaderSpec()
_entrance = SIM_ENTRANCE_READER
_security = SecurityPolicy()

# Stable names given by the udev rules in systemd/ (see docs/wiring-*.md).
TAG_READER_PATH = "/dev/kiosk-tag-reader"


def _real_or_sim(real: str) -> PerProfile:
    return PerProfile(lambda profile: SIMULATED if profile == "sim" else real)


def _check_card_reader(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    # Block 0 is the manufacturer block; every fourth block is a sector trailer holding the
    # keys and access bits: writing a card number there would lock the sector for good.
    block = values.get("card_block")
    if block is not None and block % 4 == 3:
        return [("card_block", "config.problem.card_block", {"value": block})]
    return []


def _check_security(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    if "afi_on_loan" in values and values.get("afi_on_shelf") == values["afi_on_loan"]:
        return [("afi_on_loan", "config.problem.afi_same", {"value": values["afi_on_loan"]})]
    return []

_circulation = CirculationSettings()
_offline = OfflineSettings()
_hub = HubSettings()

# https anywhere; plain http only to the loopback address (the reference hub on a
# developer machine): a device token never crosses a network in clear. Empty: no hub.
HUB_URL = (r"|https://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/\S*)?"
           r"|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/\S*)?")


def _check_hub(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    problems: list[tuple[str, str, dict[str, Any]]] = []
    if values.get("url") and "token_file" in values and values["token_file"] is None:
        problems.append(("token_file", "sync.config.token_file_missing", {}))
    if values.get("client_key") is not None and values.get("client_cert", 0) is None:
        problems.append(("client_key", "sync.config.key_without_cert", {}))
    return problems


SCHEMA = Schema(
    sections=(
        Section("device", (
            Key("id", Str(DEVICE_ID, example="van-01")),
            Key("branch", Str(ISIL, example="CN-431121-0002")),
            Key("profile", Choice(PROFILES)),
            Key("timezone", Timezone(), _device.timezone),
            Key("language", Language(), _device.language),
        )),
        Section("database", (
            Key("path", PathType(), PerProfile(default_database_path)),
        )),
        Section("circulation", (
            Key("max_fines", Money("0", "10000"),
                Decimal(_circulation.max_fines_cents).scaleb(-2)),
            Key("on_loan_to_other_kiosk", Choice(OnLoanToOther),
                _circulation.on_loan_to_other_kiosk),
            Key("on_loan_to_other_desk", Choice(OnLoanToOther),
                _circulation.on_loan_to_other_desk),
            Key("online_unknown_item", Choice(UnknownItem), _circulation.online_unknown_item),
            Key("unknown_item_loan_days", Int(1, 365), _circulation.unknown_item_loan_days),
            Key("hold_pickup_days", Int(1, 60), _circulation.hold_pickup_days),
        )),
        Section("circulation.offline", (
            Key("max_loans_per_patron", Int(1, 100), _offline.max_loans_per_patron),
            Key("unknown_item", Choice(UnknownItem), _offline.unknown_item),
        )),
        Section("tag_reader", (
            Key("driver", Choice(TAG_READER_DRIVERS), _tags.driver),
            Key("url", Str(r"sim|/\S+|[a-z0-9+]+://\S+", example=TAG_READER_PATH),
                _real_or_sim(TAG_READER_PATH)),
            Key("baudrate", Int(1200, 921600), _tags.baudrate),
            Key("parity", Choice(("N", "E", "O")), _tags.parity),
            Key("address", Int(0, 255), _tags.address),
            Key("timeout_ms", Int(50, 10000), _tags.timeout_ms),
        )),
        Section("card_reader", (
            Key("driver", Choice(CARD_READER_DRIVERS), _cards.driver),
            Key("spi", Str(r"sim|[0-9]\.[0-9]", example="0.0"), _real_or_sim("0.0")),
            Key("spi_hz", Int(100_000, 10_000_000), _cards.spi_hz),
            Key("reset_pin", Int(0, 27), _cards.reset_pin),
            Key("card_block", Int(1, 62), _cards.card_block),
            Key("key", Str(r"[0-9A-Fa-f]{12}", example="FFFFFFFFFFFF"), _cards.key,
                secret=True),
            Key("key_type", Choice(("A", "B")), _cards.key_type),
        ), check=_check_card_reader),
        Section("entrance_reader", (
            Key("enabled", Bool(), PerProfile(lambda p: p != "van")),
            Key("driver", Choice(CARD_READER_DRIVERS), _entrance.driver),
            Key("spi", Str(r"sim|[0-9]\.[0-9]", example=ENTRANCE_READER_SPI),
                _real_or_sim(ENTRANCE_READER_SPI)),
            Key("spi_hz", Int(100_000, 10_000_000), _entrance.spi_hz),
            Key("reset_pin", Int(0, 27), _entrance.reset_pin),
            Key("card_block", Int(1, 62), _entrance.card_block),
            Key("key", Str(r"[0-9A-Fa-f]{12}", example="FFFFFFFFFFFF"), _entrance.key,
                secret=True),
            Key("key_type", Choice(("A", "B")), _entrance.key_type),
        ), check=_check_card_reader),
        Section("gpio", (
            Key("factory", Choice(GpioFactory),
                PerProfile(lambda p: GpioFactory.MOCK if p == "sim" else GpioFactory.LGPIO)),
        )),
        Section("security", (
            Key("mode", Choice(SecurityMode), _security.mode),
            Key("afi_on_shelf", Int(0, 255), _security.afi_on_shelf),
            Key("afi_on_loan", Int(0, 255), _security.afi_on_loan),
        ), check=_check_security),
        Section("hub", (
            Key("url", Str(HUB_URL, example="https://hub.example-county.cn/api/v1"),
                _hub.url),
            Key("token_file", OptionalPath(), _hub.token_file),
            Key("ca_file", OptionalPath(), _hub.ca_file),
            Key("client_cert", OptionalPath(), _hub.client_cert),
            Key("client_key", OptionalPath(), _hub.client_key),
            Key("batch_size", Int(1, 5000), _hub.batch_size),
            Key("page_size", Int(1, 5000), _hub.page_size),
            Key("connect_timeout_ms", Int(100, 60_000), _hub.connect_timeout_ms),
            Key("read_timeout_ms", Int(100, 600_000), _hub.read_timeout_ms),
            Key("retry_initial_ms", Int(10, 60_000), _hub.retry_initial_ms),
            Key("retry_max_s", Int(1, 3600), _hub.retry_max_s),
            Key("retry_after_max_s", Int(1, 86_400), _hub.retry_after_max_s),
            Key("sync_interval_s", Int(5, 86_400), _hub.sync_interval_s),
            Key("probe_interval_s", Int(1, 3600), _hub.probe_interval_s),
        ), check=_check_hub),
        *devices.SECTIONS,
        daemon.SECTION,
        ui.SECTION,
        desk.SECTION,
        sip2.SECTION,
    ),
    profile_key="device.profile",
    # Where a profile's defaults differ from a key's own default: "section.key" -> value.
    # For now the profiles differ only in the database path, which PerProfile computes.
    profile_defaults={profile: {} for profile in PROFILES},
    fallback_profile="sim",
    checks=(devices.pins_used_twice, devices.entrance_problems),
)

# What a kiosk without a config file is: the simulated device of the sample county.
SIM_DOCUMENT: dict[str, Any] = {
    "device": {"id": _device.id, "branch": _device.branch, "profile": "sim"},
}


def build_settings(values: dict[str, dict[str, Any]], source: Path | None) -> Settings:
    """Settings from the complete ``values`` of a problem-free
    :class:`~kiosk.config.schema.Resolved`."""
    circulation = dict(values["circulation"])
    entrance = dict(values["entrance_reader"])
    max_fines: Decimal = circulation.pop("max_fines")
    return Settings(
        device=DeviceSettings(**values["device"]),
        database=DatabaseSettings(**values["database"]),
        circulation=CirculationSettings(
            max_fines_cents=int(max_fines * 100),
            offline=OfflineSettings(**values["circulation.offline"]),
            **circulation,
        ),
        hardware=HardwareSpec(
            tag_reader=TagReaderSpec(**values["tag_reader"]),
            card_reader=CardReaderSpec(**values["card_reader"]),
            entrance_reader=CardReaderSpec(**entrance) if entrance.pop("enabled") else None,
            gpio=GpioSpec(**values["gpio"]),
            security=SecurityPolicy(**values["security"]),
            **devices.build(values),
        ),
        hub=HubSettings(**values["hub"]),
        daemon=daemon.build(values["daemon"]),
        ui=ui.build(values["ui"]),
        desk=desk.build(values["desk"]),
        sip2=sip2.build(values["sip2"]),
        source=source,
    )
