"""The codec's bottleneck: a semantic VQ code and 36 acoustic FSQ codes per 80 ms frame (DESIGN §5).

The latent's first ``semantic_dim`` channels go through a vector quantizer with an EMA codebook
(vector-quantize-pytorch ``VectorQuantize``: 8192 codes x 256); the remaining ``acoustic_dim``
channels through finite scalar quantization, one scalar code of 21 levels per channel
(``FSQ(levels=[21], num_codebooks=36, dim=36)``: 36 independent codebooks of 21 entries, not one
codebook of 21^36). A frame's 37 codes are ``[semantic, acoustic_0, ..., acoustic_35]``.

Quantizer dropout (training only, per example): the VQ is bypassed for half of the examples and
FSQ is applied to half, replaced by uniform noise of one quantization step ("dithered") for a
quarter and bypassed for a quarter. Why: a decoder that also sees unquantized latents learns a
smooth map that the quantized points sit on, and the bypassed VQ keeps the codebook from being the
only path the gradients take, which is what lets codes collapse (DESIGN §5).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from vector_quantize_pytorch import FSQ, VectorQuantize

from voxkit.codec.args import CodecArgs

FSQ_QUANTIZED, FSQ_DITHERED, FSQ_BYPASSED = 0, 1, 2


@dataclasses.dataclass
class Quantized:
    """What one pass through the bottleneck gives the decoder and the losses."""

    latent: torch.Tensor  # [B, T, 292] what the decoder hears (quantized, dithered or bypassed per example)
    codes: torch.Tensor  # [B, T, 37] int64 codes of the quantized latent (whatever the dropout chose)
    semantic: torch.Tensor  # [B, T, 256] the semantic part the decoder hears (for distillation)
    commit_loss: torch.Tensor  # scalar VQ commitment loss (0 where the VQ was bypassed)


class CodecQuantizer(nn.Module):
    """Semantic VQ + acoustic FSQ; ``semantic`` and ``acoustic`` are the library's modules."""

    def __init__(self, args: CodecArgs) -> None:
        super().__init__()
        self.semantic_dim = args.semantic_dim
        self.acoustic_dim = args.acoustic_dim
        self.levels = args.acoustic_codebook_size
        self.codebook_size = args.semantic_codebook_size
        self.semantic = VectorQuantize(
            dim=args.semantic_dim,
            codebook_size=args.semantic_codebook_size,
            decay=args.vq_decay,
            commitment_weight=1.0,
            threshold_ema_dead_code=args.vq_dead_code_threshold,
            kmeans_init=False,
        )
        self.acoustic = FSQ(levels=[args.acoustic_codebook_size], num_codebooks=args.acoustic_dim, dim=args.acoustic_dim)
        # (the table they were computed from, its version, 0.5 |c|^2 [8192]): see _half_norms
        self._norms: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def train(self, mode: bool = True) -> CodecQuantizer:
        """Also forgets the cached code norms: training moves the codebook (see :meth:`_half_norms`)."""
        self._norms = None
        return super().train(mode)

    def split(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, 292] -> semantic [B, T, 256], acoustic [B, T, 36]."""
        return latent[..., : self.semantic_dim], latent[..., self.semantic_dim :]

    def _acoustic_indices(self, acoustic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, 36] -> FSQ values [B, T, 36] (in [-1, 1], steps of 2 / (levels - 1)), codes [B, T, 36] int64."""
        values, indices = self.acoustic(acoustic)
        return values.to(acoustic.dtype), indices.long()

    def forward(self, latent: torch.Tensor, vq_on: torch.Tensor | None = None, fsq_mode: torch.Tensor | None = None) -> Quantized:
        """latent [B, T, 292] -> :class:`Quantized`.

        vq_on [B] bool and fsq_mode [B] (0 quantized, 1 dithered, 2 bypassed): the dropout's choice
        per example (:func:`draw_dropout`); None quantizes everything (inference).
        """
        semantic, acoustic = self.split(latent)
        sem_q, sem_codes, commit = self.semantic(semantic)  # [B, T, 256], [B, T], scalar
        ac_q, ac_codes = self._acoustic_indices(acoustic)  # [B, T, 36] each
        if vq_on is not None:
            keep = vq_on[:, None, None]  # [B, 1, 1]
            sem_q = torch.where(keep, sem_q, semantic)
            commit = commit * vq_on.float().mean()
        if fsq_mode is not None:
            mode = fsq_mode[:, None, None]  # [B, 1, 1]
            bounded = torch.tanh(acoustic)  # [B, T, 36] what FSQ rounds, before rounding
            step = 2.0 / (self.levels - 1)
            dithered = bounded + (torch.rand_like(bounded) - 0.5) * step  # [B, T, 36] noise of one step
            ac_q = torch.where(mode == FSQ_QUANTIZED, ac_q, torch.where(mode == FSQ_DITHERED, dithered, acoustic))
        codes = torch.cat([sem_codes.long()[..., None], ac_codes], dim=-1)  # [B, T, 37]
        return Quantized(latent=torch.cat([sem_q, ac_q], dim=-1), codes=codes, semantic=sem_q, commit_loss=commit)

    @torch.no_grad()
    def encode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, T, 292] -> codes [B, T, 37] int64, without touching the codebook."""
        semantic, acoustic = self.split(latent)
        flat = semantic.reshape(-1, self.semantic_dim).float()  # [B T, 256]
        table = self.codebook()  # [8192, 256]
        # nearest code by squared distance, |x|^2 dropped (the same for every code)
        scores = flat @ table.t()  # [B T, 8192]
        scores -= self._half_norms(table)  # [8192]
        sem_codes = scores.argmax(-1).view(semantic.shape[:-1])  # [B, T]
        _, ac_codes = self._acoustic_indices(acoustic)
        return torch.cat([sem_codes[..., None], ac_codes], dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T, 37] -> quantized latent [B, T, 292] (float32)."""
        if codes.shape[-1] != 1 + self.acoustic_dim:
            raise ValueError(f"codes must have {1 + self.acoustic_dim} entries per frame, got {codes.shape[-1]}")
        table = self.codebook()  # [8192, 256]
        semantic = table[codes[..., 0]]  # [B, T, 256]
        acoustic = codes[..., 1:].float() * (2.0 / (self.levels - 1)) - 1.0  # [B, T, 36] in [-1, 1]
        return torch.cat([semantic, acoustic.to(semantic.dtype)], dim=-1)

    def codebook(self) -> torch.Tensor:
        """The semantic codebook [8192, 256] (the EMA means)."""
        return self.semantic.codebook.reshape(self.codebook_size, self.semantic_dim)

    def _half_norms(self, table: torch.Tensor) -> torch.Tensor:
        """``0.5 |c|^2`` of every code [8192]; computed once per table, not at every streamed frame.

        Why the cache is never stale: it is only kept in eval mode (training's EMA writes the table
        through ``.data``, which no version counter sees, and :meth:`train` drops the cache), and
        it holds the table it was computed from: a load or any in-place write bumps that table's
        version counter, and ``.to()`` or a new table gives other memory (which the held table
        keeps from being reused at the same address).
        """
        if self.training or table.is_inference():  # an inference tensor has no version counter
            return 0.5 * (table * table).sum(-1)
        cached = self._norms
        if cached is None or not _same_table(cached[0], table) or cached[1] != table._version:
            cached = self._norms = (table, table._version, 0.5 * (table * table).sum(-1))  # norms [8192]
        return cached[2]


def _same_table(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors read the same memory as the same table."""
    return a.device == b.device and a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


def draw_dropout(
    batch: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantizer dropout for one training batch: vq_on [B] bool (p 0.5), fsq_mode [B] (0: 0.5, 1: 0.25, 2: 0.25)."""
    u = torch.rand(batch, 2, generator=generator)  # [B, 2]
    vq_on = u[:, 0] < 0.5
    fsq_mode = torch.where(u[:, 1] < 0.5, FSQ_QUANTIZED, torch.where(u[:, 1] < 0.75, FSQ_DITHERED, FSQ_BYPASSED))
    return vq_on.to(device), fsq_mode.to(device)


@dataclasses.dataclass(frozen=True)
class CodebookUsage:
    """How much of the semantic codebook a set of codes uses."""

    perplexity: float  # exp(entropy) of the code histogram: the number of equally used codes it equals
    used: int  # distinct codes seen
    dead: int  # codes never seen
    size: int


def batch_perplexity(codes: torch.Tensor, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """exp(entropy) of the histogram of ``codes`` (ints in [0, size)), as a 0-d tensor on their
    device: a training step can log its batch's code usage without waiting for the device."""
    flat = codes.reshape(-1).long()  # [N]
    # scatter_add, not bincount: bincount reads the largest code back to the host (a sync) on CUDA
    ones = torch.ones(flat.shape, dtype=dtype, device=codes.device)  # [N]
    counts = torch.zeros(size, dtype=dtype, device=codes.device).scatter_add_(0, flat, ones)  # [size]
    p = counts / counts.sum().clamp_min(1.0)  # [size]
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


def codebook_usage(codes: torch.Tensor, size: int) -> CodebookUsage:
    """Usage of the semantic codes ``codes`` (any shape of ints in [0, size))."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=size).double()  # [size]
    total = float(counts.sum())
    if total == 0:
        return CodebookUsage(perplexity=0.0, used=0, dead=size, size=size)
    used = int((counts > 0).sum())
    perplexity = float(batch_perplexity(codes, size, torch.float64))
    return CodebookUsage(perplexity=perplexity, used=used, dead=size - used, size=size)
