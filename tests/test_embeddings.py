from __future__ import annotations

import base64
import math

import numpy as np
import openai


def test_embeddings_of_a_string_and_a_list(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model="smollm2", input="The capital of France is Paris.")
    assert len(one.data) == 1
    vector = one.data[0].embedding
    assert len(vector) == 576  # SmolLM2-135M's embedding width
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-3)
    assert one.usage.prompt_tokens > 0
    assert one.usage.total_tokens == one.usage.prompt_tokens
    assert one.model == "smollm2"

    many = client.embeddings.create(
        model="smollm2", input=["The capital of France is Paris.", "Bread is baked in ovens."]
    )
    assert [d.index for d in many.data] == [0, 1]
    assert np.allclose(many.data[0].embedding, vector, atol=1e-4)
    assert not np.allclose(many.data[1].embedding, vector, atol=1e-2)
    assert many.usage.prompt_tokens > one.usage.prompt_tokens


def test_base64_encoding_matches_floats(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="smollm2", input="hello", encoding_format="float")
    # Asked for explicitly, the SDK hands the base64 text through untouched.
    b64 = client.embeddings.create(model="smollm2", input="hello", encoding_format="base64")
    raw = b64.data[0].embedding
    assert isinstance(raw, str)
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)


def test_sdk_default_base64_round_trip(client: openai.OpenAI) -> None:
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    implicit = client.embeddings.create(model="smollm2", input="hello")
    explicit = client.embeddings.create(model="smollm2", input="hello", encoding_format="float")
    assert np.allclose(implicit.data[0].embedding, explicit.data[0].embedding, atol=1e-6)
