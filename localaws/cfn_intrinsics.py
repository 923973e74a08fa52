"""CloudFormation intrinsic functions, resolved the way CloudFormation resolves them.

Why not moto's `clean_json`: it resolves `Fn::GetAZs ""` to us-east-1 zones, silently keeps an
unresolved `Fn::GetAtt` node when an attribute is not implemented, and turns a `Ref` to a
resource type it does not know into `None` (the property then disappears). A deployment that
"succeeds" with a missing property is worse than one that stops, so this resolver raises
`IntrinsicError` naming the expression instead.

The resolver is pure: everything stack-specific (parameters, resources, exports, conditions)
comes through the `Scope` protocol, which keeps it testable without moto.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

NO_VALUE = object()
"""Marker for `Ref: AWS::NoValue`; dropped from the enclosing dict or list."""

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class IntrinsicError(ValueError):
    """A template expression CloudFormation would reject, or this engine cannot evaluate."""


class Scope(Protocol):
    """What the resolver needs from a stack being deployed."""

    def ref(self, name: str) -> Any: ...

    def get_att(self, logical_id: str, attribute: str) -> Any: ...

    def condition(self, name: str) -> bool: ...

    def import_value(self, export_name: str) -> Any: ...

    def azs(self, region: str) -> list[str]: ...

    def mapping(self, name: str) -> dict[str, Any]: ...


def resolve(node: Any, scope: Scope) -> Any:
    """Resolve every intrinsic in `node`; `AWS::NoValue` removes the enclosing key/item."""
    value = _resolve(node, scope)
    return None if value is NO_VALUE else value


def _resolve(node: Any, scope: Scope) -> Any:
    if isinstance(node, list):
        items = (_resolve(item, scope) for item in node)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        function = _FUNCTIONS.get(key)
        if function is not None:
            return function(arg, scope)
    resolved = {key: _resolve(value, scope) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


def _ref(arg: Any, scope: Scope) -> Any:
    if arg == "AWS::NoValue":
        return NO_VALUE
    return scope.ref(str(arg))


def _get_att(arg: Any, scope: Scope) -> Any:
    if isinstance(arg, str):
        logical_id, _, attribute = arg.partition(".")
    else:
        logical_id, attribute = arg[0], _resolve(arg[1], scope)
    return scope.get_att(logical_id, str(attribute))


def _join(arg: Any, scope: Scope) -> str:
    delimiter, values = arg
    parts = _resolve(values, scope)
    if not isinstance(parts, list):
        raise IntrinsicError(f"Fn::Join needs a list, got {parts!r}")
    return str(delimiter).join(_scalar(part, "Fn::Join") for part in parts)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, dict | list):
        raise IntrinsicError(f"{where}: cannot use {value!r} as a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sub(arg: Any, scope: Scope) -> str:
    if isinstance(arg, list):
        template, raw_variables = arg
        variables = {name: _resolve(value, scope) for name, value in raw_variables.items()}
    else:
        template, variables = arg, {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return _scalar(variables[name], "Fn::Sub")
        if "." in name and not name.startswith("AWS::"):
            logical_id, _, attribute = name.partition(".")
            return _scalar(scope.get_att(logical_id, attribute), "Fn::Sub")
        return _scalar(scope.ref(name), "Fn::Sub")

    return _SUB_VARIABLE.sub(replace, str(template))


def _select(arg: Any, scope: Scope) -> Any:
    index, values = _resolve(arg[0], scope), _resolve(arg[1], scope)
    try:
        return values[int(index)]
    except (IndexError, TypeError, ValueError) as error:
        raise IntrinsicError(f"Fn::Select index {index!r} out of range for {values!r}") from error


def _split(arg: Any, scope: Scope) -> list[str]:
    delimiter, source = arg
    return _scalar(_resolve(source, scope), "Fn::Split").split(str(delimiter))


def _if(arg: Any, scope: Scope) -> Any:
    name, when_true, when_false = arg
    return _resolve(when_true if scope.condition(str(name)) else when_false, scope)


def _get_azs(arg: Any, scope: Scope) -> list[str]:
    region = _resolve(arg, scope) or scope.ref("AWS::Region")
    return scope.azs(str(region))


def _import_value(arg: Any, scope: Scope) -> Any:
    return scope.import_value(_scalar(_resolve(arg, scope), "Fn::ImportValue"))


def _base64(arg: Any, scope: Scope) -> str:
    text = _scalar(_resolve(arg, scope), "Fn::Base64")
    return base64.b64encode(text.encode()).decode()


def _find_in_map(arg: Any, scope: Scope) -> Any:
    name, top, second = (_scalar(_resolve(part, scope), "Fn::FindInMap") for part in arg[:3])
    try:
        return scope.mapping(name)[top][second]
    except KeyError as error:
        raise IntrinsicError(f"Fn::FindInMap: no {name}/{top}/{second}") from error


def _cidr(arg: Any, scope: Scope) -> list[str]:
    block, count, host_bits = (_resolve(part, scope) for part in arg)
    network = ipaddress.ip_network(str(block))
    new_prefix = network.max_prefixlen - int(host_bits)
    subnets = network.subnets(new_prefix=new_prefix)
    return [str(subnet) for _, subnet in zip(range(int(count)), subnets, strict=False)]


def _condition_function(name: str) -> Callable[[Any, Scope], bool]:
    def evaluate(arg: Any, scope: Scope) -> bool:
        return evaluate_condition({name: arg}, scope)

    return evaluate


def evaluate_condition(node: Any, scope: Scope) -> bool:
    """Evaluate a `Conditions` entry or a rule assertion to a boolean."""
    if isinstance(node, bool):
        return node
    if isinstance(node, str):
        return node.lower() == "true"
    if not isinstance(node, dict) or len(node) != 1:
        raise IntrinsicError(f"not a condition: {node!r}")
    ((key, arg),) = node.items()
    if key == "Condition":
        return scope.condition(str(arg))
    if key == "Fn::Equals":
        left, right = (_resolve(value, scope) for value in arg)
        return bool(_comparable(left) == _comparable(right))
    if key == "Fn::Not":
        return not evaluate_condition(arg[0], scope)
    if key == "Fn::And":
        return all(evaluate_condition(item, scope) for item in arg)
    if key == "Fn::Or":
        return any(evaluate_condition(item, scope) for item in arg)
    if key == "Fn::Contains":
        haystack, needle = _resolve(arg[0], scope), _resolve(arg[1], scope)
        return _comparable(needle) in [_comparable(item) for item in haystack]
    raise IntrinsicError(f"unsupported condition function {key}")


def _comparable(value: Any) -> Any:
    return _scalar(value, "Fn::Equals") if isinstance(value, bool | int | float) else value


_FUNCTIONS: dict[str, Callable[[Any, Scope], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Join": _join,
    "Fn::Sub": _sub,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::GetAZs": _get_azs,
    "Fn::ImportValue": _import_value,
    "Fn::Base64": _base64,
    "Fn::FindInMap": _find_in_map,
    "Fn::Cidr": _cidr,
    "Fn::Equals": _condition_function("Fn::Equals"),
    "Fn::Not": _condition_function("Fn::Not"),
    "Fn::And": _condition_function("Fn::And"),
    "Fn::Or": _condition_function("Fn::Or"),
}


def references(node: Any) -> set[str]:
    """Logical ids (or parameter/pseudo names) a template fragment refers to.

    Used to order resources: `Ref`, `Fn::GetAtt` and the `${Name}` / `${Name.Attr}` variables
    of `Fn::Sub` (minus the `!` literals and the Sub's own variables) all create dependencies.
    """
    found: set[str] = set()
    _collect(node, found)
    return found


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, found)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and isinstance(arg, str):
            found.add(arg)
            return
        if key == "Fn::GetAtt":
            found.add(arg.partition(".")[0] if isinstance(arg, str) else str(arg[0]))
            _collect(arg if isinstance(arg, str) else arg[1:], found)
            return
        if key == "Fn::Sub":
            _collect_sub(arg, found)
            return
    for value in node.values():
        _collect(value, found)


def _collect_sub(arg: Any, found: set[str]) -> None:
    template, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
    _collect(list(variables.values()), found)
    for name in _SUB_VARIABLE.findall(str(template)):
        if not name.startswith("!") and name not in variables:
            found.add(name.partition(".")[0] if not name.startswith("AWS::") else name)


def functions_used(node: Any) -> Iterable[str]:
    """Intrinsic function names in a fragment, for the pre-deployment support scan."""
    if isinstance(node, list):
        for item in node:
            yield from functions_used(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("Fn::") or key == "Ref":
                yield key
            yield from functions_used(value)


SUPPORTED_FUNCTIONS = frozenset(_FUNCTIONS) | {"Condition", "Fn::Contains"}
