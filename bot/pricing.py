"""What tokens cost: the operator's price list (PRICES_FILE, by default bot/prices.toml), per-server
overrides, and money text."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Package data: found wherever the bot is installed and whatever the working directory.
DEFAULT_PRICES_FILE = Path(__file__).resolve().parent / "prices.toml"
PER_TOKENS = 1_000_000  # prices are per million tokens
_OVERRIDE = re.compile(r"^\s*(?P<model>[^\s=]+)\s*=\s*(?P<prices>[0-9.eE+\-/\s]+)$")


class PriceError(ValueError):
    """A malformed price file or override; str(error) says what is wrong."""


@dataclass(frozen=True)
class Price:
    """Per million tokens. reasoning None: the model bills its reasoning tokens as output."""

    input: float
    output: float
    reasoning: float | None = None

    def cost(self, prompt: int, completion: int, reasoning: int = 0) -> float:
        # Reasoning tokens are part of completion_tokens in the OpenAI usage object.
        reasoning_price = self.output if self.reasoning is None else self.reasoning
        spoken = completion - reasoning
        return (prompt * self.input + spoken * self.output + reasoning * reasoning_price) / PER_TOKENS

    def text(self) -> str:
        """The way an admin types it in an override: input/output[/reasoning]."""
        parts = [self.input, self.output] + ([] if self.reasoning is None else [self.reasoning])
        return "/".join(f"{p:g}" for p in parts)


@dataclass(frozen=True)
class TokenCounts:
    requests: int = 0
    prompt: int = 0
    completion: int = 0
    reasoning: int = 0  # included in completion


@dataclass(frozen=True)
class Cost:
    amount: float
    unpriced_models: tuple[str, ...] = ()  # used but not in the price list: counted as free


@dataclass(frozen=True)
class PriceList:
    currency: str
    models: Mapping[str, Price]

    @classmethod
    def load(cls, path: Path = DEFAULT_PRICES_FILE) -> PriceList:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PriceError(f"cannot read the price file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PriceError(f"{path} is not valid TOML: {exc}") from None
        currency = data.get("currency", "USD")
        models = data.get("models", {})
        if not isinstance(currency, str) or not isinstance(models, dict):
            raise PriceError(f'{path}: expected `currency = "..."` and [models."name"] tables')
        prices: dict[str, Price] = {}
        for model, entry in models.items():
            if not isinstance(entry, dict) or not {"input", "output"} <= entry.keys():
                raise PriceError(f"{path}: model {model!r} needs input and output prices")
            prices[model] = _price(
                entry["input"], entry["output"], entry.get("reasoning"), where=f"{path}: model {model!r}"
            )
        return cls(currency, prices)

    def price(self, model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
        """A server's override beats the operator's list; None for a model nobody priced."""
        if overrides and model in overrides:
            return overrides[model]
        return self.models.get(model)

    def request_cost(
        self, model: str, tokens: TokenCounts, overrides: Mapping[str, Price] | None = None
    ) -> float | None:
        price = self.price(model, overrides)
        return None if price is None else price.cost(tokens.prompt, tokens.completion, tokens.reasoning)

    def cost(self, by_model: Mapping[str, TokenCounts], overrides: Mapping[str, Price] | None = None) -> Cost:
        amount = 0.0
        unpriced: list[str] = []
        for model, tokens in sorted(by_model.items()):
            cost = self.request_cost(model, tokens, overrides)
            if cost is None:
                unpriced.append(model)
            else:
                amount += cost
        return Cost(amount, tuple(unpriced))

    def money(self, amount: float) -> str:
        # Below a cent, four decimals: a day of a cheap model is often a fraction of a cent.
        digits = 2 if amount >= 0.01 or amount == 0 else 4
        return f"{amount:,.{digits}f} {self.currency}"


def _price(*values: object, where: str) -> Price:
    numbers: list[float | None] = []
    for value in values:
        if value is None:
            numbers.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PriceError(f"{where}: prices must be numbers")
        if not math.isfinite(value) or value < 0:
            raise PriceError(f"{where}: prices must be 0 or more")
        numbers.append(float(value))
    input_, output, reasoning = numbers
    assert input_ is not None and output is not None
    return Price(input_, output, reasoning)


def parse_overrides(raw: str) -> dict[str, Price]:
    """`gpt-4o=2.5/10, my-model=0/0, o3=2/8/8`: per million tokens, input/output[/reasoning]."""
    overrides: dict[str, Price] = {}
    for item in filter(None, (part.strip() for part in re.split(r"[,;\n]", raw))):
        match = _OVERRIDE.match(item)
        numbers = match.group("prices").replace(" ", "").split("/") if match else []
        if match is None or len(numbers) not in (2, 3):
            raise PriceError(
                f"`{item[:60]}` is not model=input/output[/reasoning] (prices per million tokens)"
            )
        try:
            values = [float(n) for n in numbers]
        except ValueError:
            raise PriceError(f"`{item[:60]}`: prices must be numbers") from None
        reasoning = values[2] if len(values) == 3 else None
        overrides[match.group("model")] = _price(values[0], values[1], reasoning, where=match.group("model"))
    return overrides


def overrides_from_json(stored: Mapping[str, list[float | None]] | None) -> dict[str, Price]:
    """A `prices` setting as stored ({model: [input, output, reasoning]}) back into Prices."""
    return {model: Price(float(i or 0), float(o or 0), r) for model, (i, o, r) in (stored or {}).items()}


def overrides_to_json(overrides: Mapping[str, Price]) -> dict[str, list[float | None]]:
    return {model: [p.input, p.output, p.reasoning] for model, p in overrides.items()}
