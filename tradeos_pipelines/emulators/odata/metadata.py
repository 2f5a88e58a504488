"""``$metadata``: the EDMX (OData v3 CSDL) document of the published objects.

Laid out as a real УТ publication lays it out (``shared/contracts/onec-odata.md``; a trimmed
real document is in the GitHub repository ``Romandredan/odata1c-gate``): one ``Schema``
``StandardODATA`` with entity types, complex types (tabular and record-set rows, virtual
table results), enumerations and associations, then the ``EnterpriseV8`` container with the
entity sets and the bound functions (``IsBindable``, a ``bindingParameter``, no
``EntitySet`` attribute). Only published objects appear, and a navigation property only
when its target is published too.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import quoteattr

from tradeos_pipelines.emulators.odata.schema import ENUMS, EntityType, MetaObject

EDMX_NS = "http://schemas.microsoft.com/ado/2007/06/edmx"
METADATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
EDM_NS = "http://schemas.microsoft.com/ado/2009/11/edm"


def _type_xml(kind: str, entity: EntityType, navigation: list[tuple[str, str]]) -> list[str]:
    lines = [f"<{kind} Name={quoteattr(entity.name)}>"]
    if entity.keys:
        lines.append("<Key>")
        lines += [f"<PropertyRef Name={quoteattr(k)}/>" for k in entity.keys]
        lines.append("</Key>")
    for prop in entity.props:
        nullable = "true" if prop.nullable else "false"
        lines.append(
            f"<Property Name={quoteattr(prop.name)} Type={quoteattr(prop.type_name)} "
            f'Nullable="{nullable}"/>'
        )
    for name, association in navigation:
        lines.append(
            f"<NavigationProperty Name={quoteattr(name)} "
            f"Relationship={quoteattr('StandardODATA.' + association)} "
            'FromRole="Begin" ToRole="End"/>'
        )
    lines.append(f"</{kind}>")
    return lines


def _references(entity: EntityType, published: set[str]) -> list[tuple[str, str, str]]:
    """(navigation property, association, target type) for references to published objects."""
    found = []
    for prop in entity.props:
        if prop.target is not None and prop.target in published:
            name = prop.name.removesuffix("_Key")
            found.append((name, f"{entity.name}_{name}", prop.target))
    return found


def build_metadata(objects: Iterable[MetaObject], published: set[str]) -> bytes:
    """The EDMX document for the published subset of ``objects``."""
    shown = [o for o in objects if o.name in published]
    schema: list[str] = []
    associations: list[str] = []
    container: list[str] = []
    functions: list[str] = []
    enums: set[str] = set()
    for obj in shown:
        for entity in obj.entities:
            references = _references(entity, published)
            navigation = [(name, association) for name, association, _ in references]
            schema += _type_xml("EntityType", entity, navigation)
            container.append(
                f"<EntitySet Name={quoteattr(entity.name)} "
                f"EntityType={quoteattr('StandardODATA.' + entity.name)}/>"
            )
            for _, association, target in references:
                associations += [
                    f"<Association Name={quoteattr(association)}>",
                    f'<End Role="Begin" Type={quoteattr("StandardODATA." + entity.name)} '
                    'Multiplicity="*"/>',
                    f'<End Role="End" Type={quoteattr("StandardODATA." + target)} '
                    'Multiplicity="0..1"/>',
                    "</Association>",
                ]
            enums |= {p.enum for p in entity.props if p.enum is not None}
        for complex_type in obj.complex_types:
            schema += _type_xml("ComplexType", complex_type, [])
        for function in obj.functions:
            attributes = (
                f'Name={quoteattr(function.name)} IsBindable="true" '
                f'IsSideEffecting="{"true" if function.side_effects else "false"}"'
            )
            if function.returns is not None:
                attributes += f" ReturnType={quoteattr(function.returns)}"
            functions.append(f"<FunctionImport {attributes}>")
            functions.append(
                '<Parameter Name="bindingParameter" '
                f"Type={quoteattr('StandardODATA.' + function.binding)}/>"
            )
            functions += [
                f"<Parameter Name={quoteattr(name)} Type={quoteattr(edm)}/>"
                for name, edm in function.params
            ]
            functions.append("</FunctionImport>")
    for enum in sorted(enums):
        schema.append(f'<EnumType Name={quoteattr(enum)} UnderlyingType="Edm.Int32">')
        schema += [f"<Member Name={quoteattr(m)}/>" for m in ENUMS[enum]]
        schema.append("</EnumType>")
    document = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<edmx:Edmx xmlns:edmx="{EDMX_NS}" Version="1.0">',
        f'<edmx:DataServices xmlns:m="{METADATA_NS}" m:DataServiceVersion="3.0" '
        'm:MaxDataServiceVersion="3.0">',
        f'<Schema xmlns="{EDM_NS}" Namespace="StandardODATA">',
        *schema,
        *associations,
        '<EntityContainer Name="EnterpriseV8" m:IsDefaultEntityContainer="true">',
        *container,
        *functions,
        "</EntityContainer>",
        "</Schema>",
        "</edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return "\n".join(document).encode()
