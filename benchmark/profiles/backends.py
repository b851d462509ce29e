"""LLM backends behind one interface: `generate(conversations, params) -> list[Result]`.

- `TransformersBackend`: in-process Hugging Face transformers, batched greedy/sampled generation with
  length-sorted batches, optionally over several worker processes (the default; nothing to compile).
- `OpenAIBackend`: any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama,
  `transformers serve`, hosted APIs): concurrent requests, timeouts, retries with backoff, rate limit.
- `LlamaCppBackend`: in-process llama.cpp (`pip install llama-cpp-python`, compiles from source).

A result is the generated text or a recorded failure; nothing is ever filled with a placeholder.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # torch is imported where a model generates: the settings table reads this module light
    import torch

Message = dict[str, str]
Conversation = Sequence[Message]


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings (plain data; part of every profile's cache key). temperature 0 = greedy.

    `no_repeat_ngram_size` (0 = off) stops the loops small models fall into ("A preference for action
    films" twelve times); the in-process transformers backend applies it, servers only if they accept it.
    """

    max_new_tokens: int = 112
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 4
    seed: int = 0

    def as_dict(self) -> dict:
        """Plain-data form."""
        return asdict(self)


@dataclass(frozen=True)
class Result:
    """One generation: text, or `error` set (text None). Token counts when the backend reports them."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None


class Backend(Protocol):
    """An LLM that answers chat conversations. `id` names the model and its weights (enters cache keys)."""

    id: str

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[Result]: ...


@dataclass(frozen=True)
class CacheOnly:
    """Stands in for a backend when only cached profiles are read: its id is all that is needed."""

    id: str

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[Result]:
        """Never called for cache-only reads; refuses if it is."""
        raise RuntimeError(f"{self.id}: cache-only backend cannot generate")


class TransformersBackend:
    """Batched in-process generation with transformers (any local model directory).

    With `workers > 1` the batches are shared among that many spawned processes, each with its own
    model copy and an equal share of the CPU threads: a small model's decoding is dominated by
    per-step overhead that one thread per process uses better than two threads on one batch. On an
    accelerator (`device='cuda'`) one process generates. The device is not part of the identity:
    greedy decoding on another device can word a profile differently where two tokens score almost
    alike, so published profile files say where they were generated.
    """

    def __init__(self, model_dir: Path, model_id: str, *, batch_size: int = 32, dtype: str = "bfloat16",
                 workers: int = 1, device: str = "cpu"):
        import torch
        from transformers import AutoTokenizer

        self.id = self.identity(model_id, dtype)
        self.batch_size = batch_size
        if workers > 1 and device == "cpu":
            threads = max(1, torch.get_num_threads() // workers)
            self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=_load_worker_generator,
                initargs=(str(model_dir), dtype, threads))
            self._local: _BatchGenerator | None = None
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)  # only to sort prompts by length
        else:
            self._pool, self._local = None, _BatchGenerator(model_dir, dtype, device)
            self.tokenizer = self._local.tokenizer

    @staticmethod
    def identity(model_id: str, dtype: str) -> str:
        """The backend id without loading the model."""
        return f"transformers:{model_id}:{dtype}"

    @classmethod
    def from_registry(cls, name: str, *, cache_dir: Path | None = None, batch_size: int = 32,
                      dtype: str = "bfloat16", workers: int = 1) -> TransformersBackend:
        """Load a registered generator (or a local model path), fetching and dequantising it if needed."""
        from benchmark.profiles.weights import LLMS, materialize, source_for, transformers_directory

        source = source_for(name, LLMS)
        directory = transformers_directory(materialize(source, cache_dir), source, cache_dir)
        return cls(directory, source.label, batch_size=batch_size, dtype=dtype, workers=workers)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[Result]:
        """Generate for all conversations; prompts of similar length share a batch (less padding)."""
        prompts = [self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        texts = [[prompts[i] for i in batch] for batch in batches]
        if self._pool is not None:
            outputs = list(self._pool.map(_generate_in_worker, texts, [params] * len(texts)))
        else:
            assert self._local is not None
            outputs = [self._local.generate(batch, params) for batch in texts]
        results: list[Result | None] = [None] * len(prompts)
        for batch, batch_results in zip(batches, outputs, strict=True):
            for index, result in zip(batch, batch_results, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        if self._pool is not None:
            self._pool.shutdown()


class NoRepeatNGram:
    """Logits processor: a token that would complete an n-gram already in the sequence (prompt included)
    gets -inf. Same rule as transformers' `no_repeat_ngram_size`, computed with tensor operations so
    that it costs nothing on an accelerator (older transformers releases loop over rows in Python)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Scores with the banned continuations masked."""
        import torch

        if input_ids.shape[1] < self.size:
            return scores
        last = input_ids[:, input_ids.shape[1] - self.size + 1:]  # the n-1 most recent tokens
        grams = input_ids.unfold(1, self.size, 1)  # [rows, windows, n]
        repeated = (grams[..., :-1] == last[:, None, :]).all(-1)
        vocab = scores.shape[1]
        banned = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        banned.scatter_(1, torch.where(repeated, grams[..., -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], float("-inf"))


def default_device() -> str:
    """'cuda' when an NVIDIA GPU is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _BatchGenerator:
    """One model copy generating for one batch of chat-formatted prompts at a time."""

    def __init__(self, model_dir: Path | str, dtype: str, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
        self.eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Result]:
        """Results for one batch, in prompt order."""
        import torch
        from transformers import LogitsProcessorList

        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sampling = params.temperature > 0
        torch.manual_seed(params.seed)
        processors = LogitsProcessorList([NoRepeatNGram(params.no_repeat_ngram_size)]
                                         if params.no_repeat_ngram_size else [])
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=params.max_new_tokens, do_sample=sampling,
                temperature=params.temperature if sampling else None, top_p=params.top_p if sampling else None,
                top_k=None, repetition_penalty=params.repetition_penalty, logits_processor=processors,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        prompt_lengths = inputs["attention_mask"].sum(1).tolist()
        results = []
        for row, prompt_length in zip(new_tokens.tolist(), prompt_lengths, strict=True):
            ended = [i for i, token in enumerate(row) if token in self.eos]
            produced = row[: ended[0]] if ended else row
            text = self.tokenizer.decode(produced, skip_special_tokens=True).strip()
            results.append(Result(text, int(prompt_length), len(produced), "stop" if ended else "length"))
        return results


_worker_generator: _BatchGenerator | None = None
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_worker_generator(model_dir: str, dtype: str, threads: int) -> None:
    import torch

    global _worker_generator
    if sys.platform.startswith("linux"):  # die with the parent: a killed run leaves no worker behind
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    torch.set_num_threads(threads)
    _worker_generator = _BatchGenerator(model_dir, dtype)


def _generate_in_worker(prompts: list[str], params: GenerationParams) -> list[Result]:
    assert _worker_generator is not None, "worker generator not loaded"
    return _worker_generator.generate(prompts, params)


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server, with concurrency, retries and a rate limit."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "not-needed", concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 4, requests_per_second: float | None = None,
                 send_repetition_penalty: bool = False):
        from openai import OpenAI

        self.id = self.identity(base_url, model)
        self.model = model
        self.concurrency = concurrency
        # repetition_penalty is not part of the OpenAI API: vLLM accepts it, strict servers reject it.
        # no_repeat_ngram_size has no server equivalent and is never sent.
        self.send_repetition_penalty = send_repetition_penalty
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next_slot = time.monotonic()
        self._lock = threading.Lock()

    @staticmethod
    def identity(base_url: str, model: str) -> str:
        """The backend id (server and model name)."""
        return f"openai:{base_url}:{model}"

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[Result]:
        """Send all conversations concurrently; each failure is recorded, not raised."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda c: self._one(c, params), conversations))

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        time.sleep(max(0.0, slot - now))

    def _one(self, conversation: Conversation, params: GenerationParams) -> Result:
        from openai import OpenAIError

        self._wait_for_slot()
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=list(conversation), max_tokens=params.max_new_tokens,
                temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                extra_body={"repetition_penalty": params.repetition_penalty} if self.send_repetition_penalty else None,
            )
        except OpenAIError as error:
            return Result(None, error=f"{type(error).__name__}: {error}")
        choice = response.choices[0]
        usage = response.usage
        return Result((choice.message.content or "").strip(), usage.prompt_tokens if usage else 0,
                      usage.completion_tokens if usage else 0, choice.finish_reason)


class LlamaCppBackend:
    """In-process llama.cpp on a GGUF file (optional extra: llama-cpp-python compiles from source)."""

    def __init__(self, gguf_file: Path, model_id: str, *, context: int = 4096, threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ImportError("the llama.cpp backend needs `pip install llama-cpp-python` "
                              "(it compiles from source: expect 10+ minutes on 2 cores)") from None
        self.id = self.identity(model_id)
        self.llm = Llama(model_path=str(gguf_file), n_ctx=context, n_threads=threads, verbose=False)

    @staticmethod
    def identity(model_id: str) -> str:
        """The backend id without loading the model."""
        return f"llama.cpp:{model_id}"

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[Result]:
        """One conversation at a time (llama.cpp reuses the KV cache of a shared prompt prefix)."""
        results = []
        for conversation in conversations:
            response = self.llm.create_chat_completion(
                messages=list(conversation), max_tokens=params.max_new_tokens, temperature=params.temperature,
                top_p=params.top_p, repeat_penalty=params.repetition_penalty, seed=params.seed)
            choice, usage = response["choices"][0], response.get("usage", {})
            results.append(Result((choice["message"]["content"] or "").strip(), usage.get("prompt_tokens", 0),
                                  usage.get("completion_tokens", 0), choice.get("finish_reason")))
        return results


def _as_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
