"""What a connection test finds in a 1C's OData publication, in words for the 1C administrator.

:func:`inspect` re-reads ``$metadata`` (a connection test must see the publication as it is
now), lists every object TradeOS needs that is not published or lacks fields, tries one row of
each published one without ``allowedOnly`` (so a missing right shows as 1C's code 20), and
reads the price types and, when the БСП register of subsystem versions is published, the
configuration's version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from tradeos_pipelines.core.vocabulary import LOGGED_ENTITIES
from tradeos_pipelines.sources.common.errors import OneCAuthError, OneCError
from tradeos_pipelines.sources.odata import metadata as md
from tradeos_pipelines.sources.odata.client import ODataClient

PUBLISH = (
    "Опубликуйте его: в 1С «Администрирование → Синхронизация данных → Настройка "
    "стандартного интерфейса OData» отметьте объект и нажмите «Сохранить» (docs/1c-odata.md)"
)
FIELDS = (
    "Поля нет в $metadata: проверьте конфигурацию (нужна 1С:УТ 11.5 или 11.4; для 11.4 "
    "укажите в интеграции options.price_register = 11.4)"
)
READ = (
    "Дайте пользователю интеграции право «Чтение» этого объекта: «Администрирование → "
    "Настройки пользователей и прав → Профили групп доступа», профиль пользователя, роль с "
    "чтением объекта (docs/1c-odata.md)"
)
VERSIONS = "InformationRegister_ВерсииПодсистем"
CONFIGURATIONS = ("УправлениеТорговлей", "УправлениеПредприятием", "КомплекснаяАвтоматизация")
ENTITIES = LOGGED_ENTITIES


@dataclass(frozen=True)
class Finding:
    """One problem on the 1C side: the object, what is wrong, what 1C said, what to do."""

    object: str
    problem: str  # not_published | field_missing | not_readable | error
    message: str
    fix: str


@dataclass
class Inspection:
    findings: list[Finding] = field(default_factory=list)
    price_types: list[tuple[UUID, str]] = field(default_factory=list)
    version: str | None = None


async def inspect(client: ODataClient) -> Inspection:
    """Check the publication for everything TradeOS reads and writes (see the module doc).

    Raises the client's errors when 1C cannot be reached or refuses the credentials.
    """
    result = Inspection()
    schema = await client.schema(fresh=True)
    needs: dict[str, md.Need] = {}
    for entity in ENTITIES:
        for need in client.needs(entity):
            needs.setdefault(need.entity_set, need)
    price_types = md.Need(md.PRICE_TYPES, md.PRICE_TYPES, md.NAMED_FIELDS, "price types")
    needs.setdefault(md.PRICE_TYPES, price_types)
    if client.price_type_key is None:
        # Not required until a price type is chosen, but needed to show prices at all.
        prices = client.price_register
        needs.setdefault(prices, md.Need(prices, f"{prices}_RecordType", md.PRICE_FIELDS, "prices"))
    broken = set()
    for missing in schema.missing(list(needs.values())):
        broken.add(missing.need.entity_set)
        result.findings.append(
            Finding(
                object=missing.need.entity_set if not missing.fields else missing.need.type_name,
                problem="field_missing" if missing.fields else "not_published",
                message=missing.describe(),
                fix=FIELDS if missing.fields else PUBLISH,
            )
        )
    for need in needs.values():
        if need.entity_set in broken:
            continue
        finding = await _try_read(client, need)
        if finding is not None:
            result.findings.append(finding)
            broken.add(need.entity_set)
    if md.PRICE_TYPES not in broken:
        rows = await client.get_rows(md.PRICE_TYPES, {"$select": "Ref_Key,Description"})
        result.price_types = [
            (UUID(str(r["Ref_Key"])), str(r.get("Description") or "")) for r in rows
        ]
    if VERSIONS in schema.entity_sets:
        result.version = await _version(client)
    return result


async def _try_read(client: ODataClient, need: md.Need) -> Finding | None:
    """One row of the object, as the integration's user, without ``allowedOnly``."""
    resource = need.entity_set
    if need.entity_set == md.STOCK:
        resource = f"{md.STOCK}/Balance(Dimensions='Номенклатура,Склад')"
    elif need.type_name.endswith("_RecordType"):
        resource = need.type_name
    try:
        await client.get_rows(resource, {"$top": 1, "allowedOnly": "false"})
    except OneCAuthError as exc:
        return Finding(need.entity_set, "not_readable", str(exc), READ)
    except OneCError as exc:
        return Finding(need.entity_set, "error", str(exc), PUBLISH)
    return None


async def _version(client: ODataClient) -> str | None:
    """The configuration's version from БСП's register of subsystem versions."""
    try:
        rows = await client.get_rows(VERSIONS, {"$select": "ИмяПодсистемы,Версия"})
    except OneCError:
        return None
    found = {str(r.get("ИмяПодсистемы")): str(r.get("Версия")) for r in rows}
    for name in CONFIGURATIONS:
        if name in found:
            return f"{name} {found[name]}"
    return None
