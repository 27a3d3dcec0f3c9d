"""Argument checks at submission: ``f.remote(1, 2, 3)`` on ``def f(a, b)`` raises TypeError in
the caller, as Ray does, instead of failing later in a worker.

A CallCheck is plain data (it pickles with an actor handle into other processes) and its
common case costs a few comparisons: positional arguments only, as many as the function
takes. Anything else is bound against the parameters, with the messages of
``inspect.Signature.bind``.
"""

from __future__ import annotations

import inspect

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class CallCheck:
    __slots__ = ("keyword_ok", "kwonly", "max_positional", "min_positional", "positional",
                 "required", "required_kwonly", "var_keyword")

    def __init__(self, positional: tuple[str, ...], required: int, var_positional: bool,
                 keyword_ok: frozenset[str], kwonly: frozenset[str],
                 required_kwonly: frozenset[str], var_keyword: bool):
        self.positional = positional  # names of the positional parameters, in order
        self.required = required  # how many of them have no default
        self.min_positional = required
        self.max_positional = 1 << 30 if var_positional else len(positional)
        self.keyword_ok = keyword_ok  # positional parameters that may be passed by keyword
        self.kwonly = kwonly
        self.required_kwonly = required_kwonly
        self.var_keyword = var_keyword

    @classmethod
    def of(cls, fn, *, bound: bool = False) -> CallCheck | None:
        """The check for calls of `fn` (with ``bound``: without its first parameter, `self`
        of a method); None when Python cannot tell its signature (some builtins)."""
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return None
        if bound and params and params[0].kind in _POSITIONAL:
            params = params[1:]
        positional = [p for p in params if p.kind in _POSITIONAL]
        kwonly = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
        return cls(
            tuple(p.name for p in positional),
            sum(p.default is inspect.Parameter.empty for p in positional),
            any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params),
            frozenset(p.name for p in positional
                      if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD),
            frozenset(p.name for p in kwonly),
            frozenset(p.name for p in kwonly if p.default is inspect.Parameter.empty),
            any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params))

    def check(self, args: tuple, kwargs: dict) -> None:
        """Raises TypeError if the function cannot be called with these arguments."""
        if not kwargs and self.min_positional <= len(args) <= self.max_positional \
                and not self.required_kwonly:
            return
        if len(args) > self.max_positional:
            raise TypeError("too many positional arguments")
        given_by_position = self.positional[:len(args)]
        for name in kwargs:
            if name in given_by_position:
                raise TypeError(f"multiple values for argument '{name}'")
            if name not in self.keyword_ok and name not in self.kwonly and not self.var_keyword:
                if name in self.positional:
                    raise TypeError(
                        f"'{name}' parameter is positional only, but was passed as a keyword")
                raise TypeError(f"got an unexpected keyword argument '{name}'")
        for name in self.positional[len(args):self.required]:
            if name not in kwargs or name not in self.keyword_ok:
                raise TypeError(f"missing a required argument: '{name}'")
        missing = sorted(self.required_kwonly - kwargs.keys())
        if missing:
            raise TypeError(f"missing a required argument: '{missing[0]}'")

    def __reduce__(self):
        return _rebuild, (self.positional, self.required,
                          self.max_positional > len(self.positional), self.keyword_ok,
                          self.kwonly, self.required_kwonly, self.var_keyword)


def _rebuild(*parts) -> CallCheck:
    return CallCheck(*parts)
