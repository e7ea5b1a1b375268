"""The bodies of the API's requests and answers, and the limits a request must keep.

The OpenAPI description at ``/openapi.json`` (rendered at ``/docs``) is built from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..data.corpus import MAX_NAME_LENGTH  # the models' limit on a name: the server checks it as sent and as normalized
from ..inference.schema import DEFAULT_TOP_K

# The limits bound the work one request may ask for. A name's length is checked as sent and
# again once normalized (transliteration turns U+FDFA into 29 letters). A plain request is at
# most 1,000 names of 64 characters: 64,000 character steps per model. Occlusion runs each name
# once more per character, so explain is bounded by characters too: 1,000 normalized
# characters in all cost at most about the same, 15 names of 64 letters each running 65 times.
MAX_NAMES = 1000
MAX_EXPLAIN_NAMES = 100
MAX_EXPLAIN_CHARACTERS = 1000


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"names": ["Nakamura", "Schmidt", "O'Brien"], "top_k": 3},
                {"names": ["Dvořák"], "top_k": 2, "model": "lstm", "explain": True},
                {"names": ["Nguyen", "Kumar"], "min_confidence": 0.6, "coverage": 0.9},
            ]
        },
    )

    names: list[str] = Field(
        description=f"Names to classify: 1 to {MAX_NAMES}, each at most {MAX_NAME_LENGTH} characters. "
        "Results come back in the same order.",
        examples=[["Nakamura", "Schmidt"]],
    )
    top_k: int = Field(
        DEFAULT_TOP_K, ge=1, description="How many languages to rank per name (capped at the number of languages).", examples=[3]
    )
    model: str | None = Field(
        None,
        description="Name of one served model (see GET /api/models). Omitted: every served model answers. "
        "Either way `predictions` is keyed by model name.",
        examples=["lstm"],
    )
    min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="A model's answer is marked `uncertain` when its top language's calibrated probability is "
        "below this. Omitted: the server's setting (`settings.min_confidence` in GET /api/models).",
        examples=[0.5],
    )
    prior: Literal["train", "uniform", "estimate"] | None = Field(
        None,
        description="The make-up of the population the names come from: `train` (the training data's language "
        "shares), `uniform` (every language alike: recommended when the make-up is unknown) or `estimate` (fitted "
        "to this request's names by EM: only meaningful for a few hundred names or more). Omitted: the server's "
        "setting (`settings.prior` in GET /api/models).",
        examples=["uniform"],
    )
    coverage: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Also return, per model, the smallest set of top languages that holds the true one for this "
        "share of names like the validation split's (split-conformal). Needs runs trained with calibration "
        "(`coverage` is true in GET /api/models); otherwise the request gets a 422.",
        examples=[0.9],
    )
    explain: bool = Field(
        False,
        description="Also return, per model, how much each character supports the top language (occlusion). "
        f"At most {MAX_EXPLAIN_NAMES} names and {MAX_EXPLAIN_CHARACTERS} characters (once normalized) "
        "per request with this flag.",
    )

    @field_validator("names")
    @classmethod
    def _check_names(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("names is empty; send at least one name")
        if len(names) > MAX_NAMES:
            raise ValueError(f"names holds {len(names)} names; send at most {MAX_NAMES} per request")
        for i, name in enumerate(names):
            if len(name) > MAX_NAME_LENGTH:
                raise ValueError(
                    f"names[{i}] is {len(name)} characters long; a name may have at most {MAX_NAME_LENGTH}"
                )
            try:
                name.encode("utf-8")
            except UnicodeEncodeError as err:  # JSON can spell a lone surrogate ("\\ud800"); it is no character
                raise ValueError(
                    f"names[{i}] holds a lone surrogate (U+{ord(name[err.start]):04X} at position {err.start}), "
                    "which is not a character; send the name as valid Unicode text"
                ) from None
        return names


class LanguageScore(BaseModel):
    language: str = Field(examples=["Japanese"])
    probability: float = Field(ge=0, le=1, examples=[0.97])


class CharacterWeight(BaseModel):
    char: str = Field(description="One character of the normalized name.", examples=["k"])
    drop: float = Field(
        description="Top language's probability minus its probability with this character replaced by the "
        "unknown symbol: positive when the character supports the top language.",
        examples=[0.12],
    )


class Explanation(BaseModel):
    language: str = Field(description="The model's top language for this name.", examples=["Japanese"])
    probability: float = Field(examples=[0.97])
    characters: list[CharacterWeight] = Field(description="One entry per character of `normalized`, in order.")


class NameResult(BaseModel):
    name: str = Field(description="The name as sent.", examples=["Nakamura"])
    normalized: str | None = Field(
        None, description="The ASCII form the models read (absent when `error` is set).", examples=["Nakamura"]
    )
    predictions: dict[str, list[LanguageScore]] | None = Field(
        None, description="Per model name: the top-k languages, most probable first."
    )
    uncertain: dict[str, bool] | None = Field(
        None, description="Per model name: true when the top language's probability is below `min_confidence`."
    )
    unknown_language: dict[str, bool] | None = Field(
        None,
        description="Per model name: true when the name is unlike every language the model was trained on (its "
        "unknown_score is above the threshold set on validation names for a 5 % false-alarm rate).",
    )
    unknown_score: dict[str, float] | None = Field(
        None, description="Per model name: how unlike the training languages the name's spelling is (higher: less like)."
    )
    coverage_set: dict[str, list[str]] | None = Field(
        None, description="Per model name, when `coverage` was set: the languages of the conformal set, best first."
    )
    explanations: dict[str, Explanation] | None = Field(None, description="Per model name, when `explain` was set.")
    error: str | None = Field(None, description="Why this name could not be classified (the others still are).")


class PredictResponse(BaseModel):
    models: list[str] = Field(description="The models that answered, in the order of GET /api/models.")
    results: list[NameResult] = Field(description="One entry per name sent, in the same order.")


class TestMetrics(BaseModel):
    accuracy: float | None = Field(description="Accuracy on the run's name-disjoint test split.")
    macro_f1: float | None = Field(description="Macro-averaged F1 on the test split (classes are unbalanced).")
    n: int | None = Field(description="Number of test names.")


class ModelInfo(BaseModel):
    name: str = Field(description="What to pass as `model` to POST /api/predict.", examples=["lstm"])
    cell: str = Field(description="Recurrent cell: rnn, lstm or gru.", examples=["lstm"])
    run: str = Field(description="Name of the run folder served.", examples=["lstm-seed0"])
    hidden_size: int | None = None
    parameters: int = Field(description="Number of trained parameters.")
    labels: list[str] = Field(description="The languages this model chooses from.")
    best_epoch: int | None = None
    best_val_accuracy: float | None = Field(None, description="Validation accuracy of the kept weights.")
    lead: bool = Field(
        False,
        description="True for the one model the page leads with: the best by validation accuracy (never by test "
        "accuracy, which would tune on the test split); ties go to the first served.",
    )
    test: TestMetrics | None = Field(None, description="Test metrics from the run's metrics.json.")
    coverage: bool = Field(False, description="Whether the run holds conformal calibration (`coverage` requests).")


class Settings(BaseModel):
    min_confidence: float = Field(description="The default `min_confidence` of POST /api/predict.", examples=[0.5])
    prior: str = Field(
        description="The default `prior` of POST /api/predict: train, uniform, estimate, or file (shares the "
        "server read at start; a request may still name train, uniform or estimate).",
        examples=["train"],
    )
    max_names: int = Field(description="Names per request.", examples=[MAX_NAMES])
    max_name_length: int = Field(
        description="Characters per name, as sent and once normalized.", examples=[MAX_NAME_LENGTH]
    )
    max_explain_names: int = Field(description="Names per request with `explain`.", examples=[MAX_EXPLAIN_NAMES])
    max_explain_characters: int = Field(
        description="Normalized characters per request with `explain`.", examples=[MAX_EXPLAIN_CHARACTERS]
    )


class Example(BaseModel):
    name: str = Field(examples=["Nakamura"])
    agree: bool = Field(description="Whether every served model gives it the same top language.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    settings: Settings
    examples: list[Example] = Field(description="Names to try, chosen at start: most agreed on, some not.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    models: list[str]


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong with the request and how to fix it.")
