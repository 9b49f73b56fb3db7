#!/usr/bin/python3
"""Writes the tagger of the ONNX side-by-side benchmark (issue 17).

A realistic PyTorch sequence tagger, exported with torch.onnx.export:

    Embedding(5000, 128) -> LSTM(128, 256, num_layers=2, bidirectional=True,
    batch_first=True) -> Linear(512, 20)

Two files with the same weights (torch.manual_seed(17)):

- tagger.onnx: input `input` (INT64 token ids [B, T]), output `output`
  ([B, T, 20]); every sequence runs the whole T (the padded batch).
- tagger_packed.onnx: inputs `input` and `lengths` (INT64 [B]); the LSTM
  reads pack_padded_sequence(..., enforce_sorted=False), so a ragged batch
  is a batch of sequences of their own lengths. Steps past a sequence's
  length give Linear(0), the bias.

Opset 14, batch and time dynamic. Run with Debian's Python (python3-torch
1.13, python3-onnx):

    /usr/bin/python3 bench/peers/make_onnx_tagger.py [--out-dir DIR]

DIR defaults to bench/results/onnx/ (gitignored: the files are about 12 MB
each). onnx_side_by_side.sh runs this when they are missing.
"""

import argparse
import os
import sys
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

VOCAB = 5000
EMBED_DIM = 128
HIDDEN = 256
LAYERS = 2
TAGS = 20
OPSET = 14
SEED = 17


class Tagger(nn.Module):
    def __init__(self, packed):
        super().__init__()
        self.packed = packed
        self.embedding = nn.Embedding(VOCAB, EMBED_DIM)
        self.lstm = nn.LSTM(EMBED_DIM, HIDDEN, num_layers=LAYERS,
                            bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * HIDDEN, TAGS)

    def forward(self, tokens, lengths=None):
        x = self.embedding(tokens)  # [B, T, 128]
        if self.packed:
            x = pack_padded_sequence(x, lengths, batch_first=True,
                                     enforce_sorted=False)
            y, _ = self.lstm(x)
            y, _ = pad_packed_sequence(y, batch_first=True)
        else:
            y, _ = self.lstm(x)  # [B, T, 512]
        return self.linear(y)  # [B, T, 20]


def export(model, path, packed):
    # Batch 1 when packed: the exporter writes the LSTMs' zero initial
    # states there as constants of the export batch's size, Expand-ed to the
    # run's batch, which only broadcasts from 1 (exported at batch 3, ONNX
    # Runtime refuses any other batch: "invalid expand shape").
    batch = 1 if packed else 3
    tokens = torch.randint(0, VOCAB, (batch, 7), dtype=torch.int64)
    lengths = torch.full((batch,), 7, dtype=torch.int64)
    args = (tokens, lengths) if packed else (tokens,)
    input_names = ['input', 'lengths'] if packed else ['input']
    dynamic_axes = {'input': {0: 'batch', 1: 'time'},
                    'output': {0: 'batch', 1: 'time'}}
    if packed:
        dynamic_axes['lengths'] = {0: 'batch'}
    tmp = path + '.tmp'
    torch.onnx.export(model, args, tmp, opset_version=OPSET,
                      input_names=input_names, output_names=['output'],
                      dynamic_axes=dynamic_axes, do_constant_folding=True)
    os.replace(tmp, path)
    print(f'wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)',
          file=sys.stderr)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=os.path.join(
        here, '..', 'results', 'onnx'))
    opts = parser.parse_args()
    os.makedirs(opts.out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    padded = Tagger(packed=False).eval()
    packed = Tagger(packed=True).eval()
    packed.load_state_dict(padded.state_dict())
    # The exporter warns about shape inference of prim:: ops and about the
    # export batch (see export()); neither matters for these graphs.
    warnings.filterwarnings('ignore', category=UserWarning)
    with torch.no_grad():
        export(padded, os.path.join(opts.out_dir, 'tagger.onnx'), False)
        export(packed, os.path.join(opts.out_dir, 'tagger_packed.onnx'), True)


if __name__ == '__main__':
    main()
