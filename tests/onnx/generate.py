#!/usr/bin/python3
"""Writes the ONNX import fixtures of tests/onnx/fixtures from real PyTorch.

Run with Debian's Python (python3-torch 1.13, python3-onnx 1.12):

    /usr/bin/python3 tests/onnx/generate.py            # every case (old fixtures deleted first)
    /usr/bin/python3 tests/onnx/generate.py CASE...    # only these cases

For each case it writes <case>.onnx (torch.onnx.export, TorchScript exporter)
and <case>.json, one biserve.test.OnnxCase message (tests/onnx/onnx_case.proto)
in proto3 JSON. Expected outputs come from PyTorch in eval() mode; the inputs
are arranged so that they are also what ONNX Runtime returns for the graph
(tests/onnx/ort_check.js checks that). Every case is seeded from its name, so
reruns write identical files.
"""

import io
import json
import os
import sys
import warnings
import zlib

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, 'fixtures')
DEFAULT_OPSET = 14
TOLERANCE = 1e-5

warnings.filterwarnings('ignore')
torch.set_num_threads(1)


# ----------------------------------------------------------------------------
# The model: one configurable module covering every case.


class Net(nn.Module):
    """[Conv1d | Embedding] -> bidirectional RNN -> [head] -> [activation].

    forward(input, [lengths], [h0], [c0]) in the order of the graph inputs.
    """

    def __init__(self, kind, inp, hidden, layers=1, batch_first=False, bias=True, dropout=0.0,
                 nonlinearity='tanh', vocab=None, packed=False, state_in=False, zero_state=None,
                 head=None, head_out=0, act=None, bidirectional=True, proj=0, conv=False):
        super().__init__()
        self.kind, self.hidden, self.layers = kind, hidden, layers
        self.batch_first, self.packed, self.state_in = batch_first, packed, state_in
        self.zero_state, self.head, self.act = zero_state, head, act
        self.dirs = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab, inp) if vocab else None
        self.conv = nn.Conv1d(inp, inp, kernel_size=3, padding=1) if conv else None
        kw = dict(num_layers=layers, batch_first=batch_first, bias=bias, dropout=dropout,
                  bidirectional=bidirectional)
        if kind == 'lstm':
            if proj:
                kw['proj_size'] = proj
            self.rnn = nn.LSTM(inp, hidden, **kw)
        elif kind == 'gru':
            self.rnn = nn.GRU(inp, hidden, **kw)
        else:
            self.rnn = nn.RNN(inp, hidden, nonlinearity=nonlinearity, **kw)
        out_width = self.dirs * (proj or hidden)
        self.linear = nn.Linear(out_width, head_out) if head else None

    def forward(self, x, *rest):
        rest = list(rest)
        lengths = rest.pop(0) if self.packed else None
        state = None
        if self.state_in:
            state = (rest[0], rest[1]) if self.kind == 'lstm' else rest[0]
        elif self.zero_state:
            # A zero initial state built in forward(): int() makes the tracer
            # record the export batch as a constant.
            batch = int(x.shape[0 if self.batch_first else 1])
            zeros = torch.zeros(self.layers * self.dirs, batch, self.hidden)
            state = (zeros, zeros) if self.kind == 'lstm' else zeros
        if self.embedding is not None:
            x = self.embedding(x)
        if self.conv is not None:  # Conv1d over time, [B, T, F] in and out.
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        if self.packed:
            x = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
        y, h = self.rnn(x, state)
        if self.packed:
            y, _ = pad_packed_sequence(y, batch_first=self.batch_first)
        h_n, c_n = h if self.kind == 'lstm' else (h, None)
        if self.head is None:
            return (y, h_n, c_n) if c_n is not None else (y, h_n)
        if self.head == 'step':
            z = self.linear(y)
        elif self.head == 'cls':
            z = self.linear(torch.cat((h_n[-2], h_n[-1]), dim=1))
        elif self.head == 'cls_view':
            # The last layer's states through h_n.view(layers, 2, B, H)[-1].
            batch = h_n.shape[1]
            last = h_n.view(self.layers, 2, batch, self.hidden)[-1]
            z = self.linear(torch.cat((last[0], last[1]), dim=1))
        elif self.head == 'cls_transpose':
            # The same vector as h_n[-2:].transpose(0, 1).reshape(B, -1).
            z = self.linear(h_n[-2:].transpose(0, 1).reshape(h_n.shape[1], -1))
        elif self.head == 'last':
            z = self.linear(y[:, -1] if self.batch_first else y[-1])
        elif self.head == 'mean':
            z = self.linear(y.mean(dim=1 if self.batch_first else 0))
        else:
            raise ValueError(self.head)
        if self.act == 'log_softmax':
            z = torch.log_softmax(z, dim=-1)
        elif self.act == 'softmax':
            z = torch.softmax(z, dim=-1)
        elif self.act == 'sigmoid':
            z = torch.sigmoid(z)
        elif self.act == 'tanh':
            z = torch.tanh(z)
        elif self.act == 'relu':
            z = torch.relu(z)
        elif self.act is not None:
            raise ValueError(self.act)
        return z


# ----------------------------------------------------------------------------
# Cases.

CASES = []


def case(name, description, opset=DEFAULT_OPSET, batch=3, T=7, lengths=None, refuse=None,
         edit=None, fixed_batch=False, fold=True, **net):
    CASES.append(dict(name=name, description=description, opset=opset, batch=batch, T=T,
                      lengths=lengths, refuse=refuse, edit=edit, fixed_batch=fixed_batch,
                      fold=fold, net=net))


# Cell kinds, return (output, h_n[, c_n]) directly.
case('lstm_basic', 'nn.LSTM(5, 8, bidirectional=True), time-major; returns (output, h_n, c_n)',
     kind='lstm', inp=5, hidden=8)
case('gru_batch_first', 'nn.GRU(6, 8, bidirectional=True, batch_first=True) (GRU node with '
     'linear_before_reset=1); returns (output, h_n)',
     kind='gru', inp=6, hidden=8, batch_first=True)
case('rnn_tanh_batch_first', 'nn.RNN(4, 8, nonlinearity=tanh, bidirectional=True, batch_first=True); '
     'returns (output, h_n)',
     kind='rnn', inp=4, hidden=8, batch_first=True)
case('rnn_relu_opset13', 'nn.RNN(5, 6, nonlinearity=relu, bidirectional=True), time-major, exported '
     'at opset 13; returns (output, h_n)',
     opset=13, kind='rnn', nonlinearity='relu', inp=5, hidden=6)
# Layers, dropout, bias.
case('lstm_3layer_dropout', 'nn.LSTM(5, 6, num_layers=3, dropout=0.3, bidirectional=True, '
     'batch_first=True): three LSTM nodes, each layer reads the concat of the previous layer\'s '
     'directions; dropout is identity in eval(); returns (output, h_n, c_n)',
     kind='lstm', inp=5, hidden=6, layers=3, dropout=0.3, batch_first=True, batch=4, T=6)
case('gru_2layer_nobias', 'nn.GRU(4, 7, num_layers=2, bias=False, bidirectional=True), time-major; '
     'returns (output, h_n)',
     kind='gru', inp=4, hidden=7, layers=2, bias=False)
case('lstm_nobias_batch_first', 'nn.LSTM(6, 5, bias=False, bidirectional=True, batch_first=True); '
     'returns (output, h_n, c_n)',
     kind='lstm', inp=6, hidden=5, bias=False, batch_first=True, batch=4, T=5)
case('rnn_relu_2layer_nobias_opset11', 'nn.RNN(3, 8, num_layers=2, nonlinearity=relu, bias=False, '
     'bidirectional=True, batch_first=True), exported at opset 11; returns (output, h_n)',
     opset=11, kind='rnn', nonlinearity='relu', inp=3, hidden=8, layers=2, bias=False,
     batch_first=True)
# Initial states as graph inputs.
case('lstm_h0_c0', 'nn.LSTM(5, 8, bidirectional=True, batch_first=True) with graph inputs h0 and '
     'c0 [2, B, 8] (initial states of the forward and backward directions); returns (output, h_n, '
     'c_n)',
     kind='lstm', inp=5, hidden=8, batch_first=True, state_in=True)
case('gru_h0_opset12', 'nn.GRU(4, 6, bidirectional=True), time-major, with graph input h0 [2, B, 6], '
     'exported at opset 12; returns (output, h_n)',
     opset=12, kind='gru', inp=4, hidden=6, state_in=True)
# Packed sequences.
case('lstm_packed_2layer_batch_first', 'pack_padded_sequence(input, lengths, batch_first=True, '
     'enforce_sorted=False) -> nn.LSTM(5, 8, num_layers=2, bidirectional=True, batch_first=True) -> '
     'pad_packed_sequence; lengths is an INT64 graph input [B] (ragged 7, 3, 5; the padding holds '
     'random values); returns (output, h_n, c_n)',
     kind='lstm', inp=5, hidden=8, layers=2, batch_first=True, packed=True, lengths=[7, 3, 5])
case('lstm_packed_2layer_time_major_opset15', 'as lstm_packed_2layer_batch_first, time-major '
     '(batch_first=False), lengths 4, 9, 6, 1, exported at opset 15',
     opset=15, kind='lstm', inp=5, hidden=8, layers=2, packed=True, lengths=[4, 9, 6, 1], T=9,
     batch=4)
case('gru_packed_batch_first', 'pack_padded_sequence(batch_first=True, enforce_sorted=False) -> '
     'nn.GRU(6, 8, bidirectional=True, batch_first=True) -> pad_packed_sequence; lengths INT64 input '
     '(ragged 5, 7, 2); returns (output, h_n)',
     kind='gru', inp=6, hidden=8, batch_first=True, packed=True, lengths=[5, 7, 2])
case('gru_packed_time_major_opset16', 'pack_padded_sequence(batch_first=False, '
     'enforce_sorted=False) -> nn.GRU(4, 8, bidirectional=True) -> pad_packed_sequence; lengths '
     'INT64 input (ragged 3, 6, 8, 6); exported at opset 16; returns (output, h_n)',
     opset=16, kind='gru', inp=4, hidden=8, packed=True, lengths=[3, 6, 8, 6], T=8, batch=4)
# Zero initial state as a constant sized to the export batch.
case('lstm_zero_state_fixed_batch', 'nn.LSTM(4, 6, num_layers=2, bidirectional=True, '
     'batch_first=True) called with h0 = c0 = torch.zeros(4, x.shape[0], 6) and exported without a '
     'dynamic batch axis (only time is dynamic): the zero states are constants of the export batch '
     '3. Served meaning: zeros for any batch. The solo runs (batch 1) hold PyTorch\'s answer with '
     'zeros; ONNX Runtime itself refuses batch 1 for this graph',
     kind='lstm', inp=4, hidden=6, layers=2, batch_first=True, zero_state=True, fixed_batch=True)
case('gru_zero_state_traced_constant', 'nn.GRU(5, 6, bidirectional=True), time-major, called with '
     'h0 = torch.zeros(2, int(x.shape[1]), 6): the tracer records a constant [2, 3, 6] although '
     'batch is a dynamic axis. Served meaning: zeros for any batch. The solo runs (batch 1) hold '
     'PyTorch\'s answer with zeros; ONNX Runtime itself refuses batch 1 for this graph',
     kind='gru', inp=5, hidden=6, zero_state=True)
# Embedding, heads on every step.
case('embedding_gru_softmax_opset16', 'nn.Embedding(20, 6) on INT64 token ids [B, T] -> nn.GRU(6, 8, '
     'bidirectional=True, batch_first=True) -> nn.Linear(16, 5) on every step -> softmax; exported '
     'at opset 16',
     opset=16, kind='gru', vocab=20, inp=6, hidden=8, batch_first=True, head='step', head_out=5,
     act='softmax')
case('lstm_head_sigmoid', 'nn.LSTM(5, 8, bidirectional=True), time-major -> nn.Linear(16, 4) on '
     'every step -> sigmoid',
     kind='lstm', inp=5, hidden=8, head='step', head_out=4, act='sigmoid')
case('rnn_tanh_head_tanh', 'nn.RNN(4, 6, tanh, bidirectional=True, batch_first=True) -> '
     'nn.Linear(12, 3) on every step -> tanh',
     kind='rnn', inp=4, hidden=6, batch_first=True, head='step', head_out=3, act='tanh')
case('gru_head_relu_2layer', 'nn.GRU(5, 6, num_layers=2, bidirectional=True, batch_first=True) -> '
     'nn.Linear(12, 4) on every step -> relu',
     kind='gru', inp=5, hidden=6, layers=2, batch_first=True, head='step', head_out=4, act='relu')
case('lstm_head_linear', 'nn.LSTM(4, 7, bidirectional=True, batch_first=True) -> nn.Linear(14, 3) on '
     'every step, no activation',
     kind='lstm', inp=4, hidden=7, batch_first=True, head='step', head_out=3)
case('gru_h128_head_log_softmax_opset17', 'nn.GRU(8, 128, bidirectional=True, batch_first=True) -> '
     'nn.Linear(256, 6) on every step -> log_softmax; exported at opset 17 (the one wide case)',
     opset=17, kind='gru', inp=8, hidden=128, batch_first=True, head='step', head_out=6,
     act='log_softmax', T=5)
# Classifiers on cat(h_n[-2], h_n[-1]).
case('lstm_classifier_softmax', 'nn.LSTM(5, 8, bidirectional=True, batch_first=True) -> '
     'nn.Linear(16, 4) on torch.cat((h_n[-2], h_n[-1]), dim=1) (Gemm) -> softmax',
     kind='lstm', inp=5, hidden=8, batch_first=True, head='cls', head_out=4, act='softmax')
case('gru_classifier_opset15', 'nn.GRU(4, 6, bidirectional=True), time-major -> nn.Linear(12, 3) on '
     'torch.cat((h_n[-2], h_n[-1]), dim=1) (Gemm), no activation; exported at opset 15',
     opset=15, kind='gru', inp=4, hidden=6, head='cls', head_out=3)
case('lstm_classifier_2layer_packed', 'nn.Embedding(16, 6) -> pack_padded_sequence (lengths input, '
     'ragged 6, 2, 4, 5, batch_first) -> nn.LSTM(6, 8, num_layers=2, bidirectional=True) -> '
     'nn.Linear(16, 3) on torch.cat((h_n[-2], h_n[-1]), dim=1) (the last layer\'s directions) -> '
     'softmax',
     kind='lstm', vocab=16, inp=6, hidden=8, layers=2, batch_first=True, packed=True,
     lengths=[6, 2, 4, 5], T=6, batch=4, head='cls', head_out=3, act='softmax')
case('gru_classifier_3layer_sigmoid', 'nn.GRU(5, 6, num_layers=3, bidirectional=True, '
     'batch_first=True) -> nn.Linear(12, 2) on torch.cat((h_n[-2], h_n[-1]), dim=1) (the last '
     'layer\'s directions; Gemm) -> sigmoid',
     kind='gru', inp=5, hidden=6, layers=3, batch_first=True, head='cls', head_out=2,
     act='sigmoid', batch=4, T=5)
case('gru_classifier_view_2layer', 'nn.GRU(5, 6, num_layers=2, bidirectional=True, '
     'batch_first=True) -> h_n.view(2, 2, B, 6)[-1] -> nn.Linear(12, 3) on torch.cat((h[0], h[1]), '
     'dim=1) -> softmax: the last layer\'s final states through a view',
     kind='gru', inp=5, hidden=6, layers=2, batch_first=True, head='cls_view', head_out=3,
     act='softmax')
case('lstm_classifier_transpose_packed', 'nn.LSTM(4, 5, bidirectional=True) packed (lengths 4, 7, '
     '2), time-major -> nn.Linear(10, 2) on h_n[-2:].transpose(0, 1).reshape(B, -1)',
     kind='lstm', inp=4, hidden=5, packed=True, lengths=[4, 7, 2], head='cls_transpose',
     head_out=2)
case('lstm_head_unfolded', 'nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True) '
     '-> nn.Linear(10, 3) on every step, exported with do_constant_folding=False: the weights are '
     'rearranged at run time (Slice, Concat, Unsqueeze, Transpose on the parameters)',
     kind='lstm', inp=4, hidden=5, layers=2, batch_first=True, head='step', head_out=3,
     fold=False)
case('rnn_relu_packed_batch_first', 'pack_padded_sequence(batch_first=True, enforce_sorted=False) '
     '-> nn.RNN(4, 7, nonlinearity=relu, bidirectional=True, batch_first=True) -> '
     'pad_packed_sequence; lengths INT64 input (ragged 2, 6, 4); returns (output, h_n)',
     kind='rnn', nonlinearity='relu', inp=4, hidden=7, batch_first=True, packed=True,
     lengths=[2, 6, 4], T=6)
# The realistic tagger.
case('tagger', 'POS-tagger shape: nn.Embedding(30, 16) -> pack_padded_sequence(batch_first=True, '
     'enforce_sorted=False) -> nn.LSTM(16, 32, num_layers=2, bidirectional=True, batch_first=True) '
     '-> pad_packed_sequence -> nn.Linear(64, 9) -> log_softmax; inputs input [B, T] INT64 and '
     'lengths [B] INT64 (ragged 9, 4, 7, 2)',
     kind='lstm', vocab=30, inp=16, hidden=32, layers=2, batch_first=True, packed=True,
     lengths=[9, 4, 7, 2], T=9, batch=4, head='step', head_out=9, act='log_softmax')
case('tagger_opset11', 'the tagger (smaller: Embedding(30, 8) -> packed 2-layer BiLSTM 8 -> '
     'Linear(16, 5) -> log_softmax, lengths 5, 7, 3) exported at opset 11',
     opset=11, kind='lstm', vocab=30, inp=8, hidden=8, layers=2, batch_first=True, packed=True,
     lengths=[5, 7, 3], head='step', head_out=5, act='log_softmax')

# ---- Refusals.


def set_attr(**attrs):
    def edit(model):
        node = rnn_node(model)
        for key, value in attrs.items():
            for a in list(node.attribute):
                if a.name == key:
                    node.attribute.remove(a)
            node.attribute.append(onnx.helper.make_attribute(key, value))
        return node
    return edit


def add_peepholes(model):
    node = rnn_node(model)
    hidden = next(a.i for a in node.attribute if a.name == 'hidden_size')
    rng = np.random.default_rng(1)
    p = onnx.numpy_helper.from_array(
        rng.uniform(-0.3, 0.3, (2, 3 * hidden)).astype(np.float32), 'lstm_peepholes')
    model.graph.initializer.append(p)
    while len(node.input) < 7:
        node.input.append('')
    node.input.append('lstm_peepholes')
    return node


def rnn_node(model):
    return next(n for n in model.graph.node if n.op_type in ('LSTM', 'GRU', 'RNN'))


case('refuse_unidirectional_lstm', 'nn.LSTM(5, 8, bidirectional=False): a forward-only LSTM node '
     '(direction "forward") is not a bidirectional model',
     refuse=['LSTM', '{node}', 'bidirectional'], kind='lstm', inp=5, hidden=8, bidirectional=False)
case('refuse_lstm_peepholes', 'an nn.LSTM(5, 8, bidirectional=True) graph (as lstm_basic) edited with onnx: input P (peepholes) added to the '
     'LSTM node',
     refuse=['LSTM', '{node}', 'peephole'], edit=add_peepholes, kind='lstm', inp=5, hidden=8)
case('refuse_lstm_clip', 'an nn.LSTM(5, 8, bidirectional=True) graph (as lstm_basic) edited with onnx: attribute clip=5.0 on the LSTM node',
     refuse=['LSTM', '{node}', 'clip'], edit=set_attr(clip=5.0), kind='lstm', inp=5, hidden=8)
case('refuse_lstm_input_forget', 'an nn.LSTM(5, 8, bidirectional=True) graph (as lstm_basic) edited with onnx: attribute input_forget=1 on '
     'the LSTM node',
     refuse=['LSTM', '{node}', 'input_forget'], edit=set_attr(input_forget=1), kind='lstm', inp=5,
     hidden=8)
case('refuse_lstm_activations', 'an nn.LSTM(5, 8, bidirectional=True) graph (as lstm_basic) edited with onnx: attribute activations = '
     'Relu, Tanh, Tanh for each direction on the LSTM node',
     refuse=['LSTM', '{node}', 'activation'],
     edit=set_attr(activations=['Relu', 'Tanh', 'Tanh', 'Relu', 'Tanh', 'Tanh']), kind='lstm',
     inp=5, hidden=8)
case('refuse_rnn_sigmoid', 'an nn.RNN(4, 8, bidirectional=True, batch_first=True) graph (as rnn_tanh_batch_first) edited with onnx: attribute activations = '
     'Sigmoid, Sigmoid on the RNN node (only Tanh and Relu are nn.RNN\'s)',
     refuse=['RNN', '{node}', 'activation'], edit=set_attr(activations=['Sigmoid', 'Sigmoid']),
     kind='rnn', inp=4, hidden=8, batch_first=True)
# nn.LSTM(proj_size > 0): PyTorch 1.13 cannot export it ("Unsupported: ONNX export of operator
# LSTM, LSTMs with projections"), so there is no projection case.
case('refuse_h0_c0_2layer', 'nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True) with '
     'graph inputs h0 and c0 [4, B, 6]: slices of them are the initial states of the second layer',
     refuse=['h0', 'second layer'], kind='lstm', inp=5, hidden=6, layers=2, batch_first=True,
     state_in=True)
case('refuse_head_on_last_step', 'nn.LSTM(5, 8, bidirectional=True, batch_first=True) -> '
     'nn.Linear(16, 3) on y[:, -1]: in a bidirectional model the last time step holds the backward '
     'direction after a single step, not a summary of the sequence',
     refuse=['last', 'backward'], kind='lstm', inp=5, hidden=8, batch_first=True, head='last',
     head_out=3)
case('refuse_mean_pooling', 'nn.GRU(4, 6, bidirectional=True, batch_first=True) -> y.mean(dim=1) -> '
     'nn.Linear(12, 3): mean pooling over time exports ReduceMean, outside the supported ops',
     refuse=['ReduceMean', '{node:ReduceMean}'], kind='gru', inp=4, hidden=6, batch_first=True, head='mean', head_out=3)
case('refuse_conv1d_front', 'nn.Conv1d(5, 5, 3, padding=1) over time in front of nn.LSTM(5, 6, '
     'bidirectional=True, batch_first=True): Conv is outside the supported ops',
     refuse=['Conv', '{node:Conv}'], kind='lstm', inp=5, hidden=6, batch_first=True, conv=True)
case('refuse_corrupt_file', 'the first 100 bytes of lstm_basic.onnx: a truncated protobuf',
     refuse=['ONNX'], kind='lstm', inp=5, hidden=8, edit='truncate')
case('refuse_empty_file', 'an empty file', refuse=['ONNX'], kind='lstm', inp=5, hidden=8,
     edit='empty')


# ----------------------------------------------------------------------------
# Generation.


def f32(values):
    """float32 values as Python floats that print (repr) and read back exactly."""
    out = [float(v) for v in np.asarray(values, dtype=np.float32).ravel()]
    for v, w in zip(out, np.asarray(values, dtype=np.float32).ravel()):
        assert np.float32(float(repr(v))) == w
    return out


def tensor(name, t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    d = {'name': name, 'shape': [int(s) for s in a.shape]}
    if a.dtype == np.int64:
        d['datatype'] = 'INT64'
        d['int64_data'] = [int(v) for v in a.ravel()]
    else:
        d['datatype'] = 'FP32'
        d['float_data'] = f32(a)
    return {'name': d['name'], 'datatype': d['datatype'], 'shape': d['shape'],
            **({'float_data': d['float_data']} if 'float_data' in d else {}),
            **({'int64_data': d['int64_data']} if 'int64_data' in d else {})}


def make_inputs(c, rng, batch, T, lengths):
    net = c['net']
    bf = net.get('batch_first', False)
    shape = (batch, T) if bf else (T, batch)
    if net.get('vocab'):
        x = torch.from_numpy(rng.integers(0, net['vocab'], shape).astype(np.int64))
    else:
        x = torch.from_numpy(rng.uniform(-1, 1, shape + (net['inp'],)).astype(np.float32))
    inputs = [('input', x)]
    if net.get('packed'):
        inputs.append(('lengths', torch.tensor(lengths, dtype=torch.int64)))
    if net.get('state_in'):
        L = net.get('layers', 1) * 2
        inputs.append(('h0', torch.from_numpy(
            rng.uniform(-0.5, 0.5, (L, batch, net['hidden'])).astype(np.float32))))
        if net['kind'] == 'lstm':
            inputs.append(('c0', torch.from_numpy(
                rng.uniform(-0.5, 0.5, (L, batch, net['hidden'])).astype(np.float32))))
    return inputs


def output_names(c):
    net = c['net']
    if net.get('head'):
        return ['logits']
    return ['output', 'h_n', 'c_n'] if net['kind'] == 'lstm' else ['output', 'h_n']


def run(model, inputs, names):
    with torch.no_grad():
        outs = model(*[t for _, t in inputs])
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    assert len(outs) == len(names)
    return {'inputs': [tensor(n, t) for n, t in inputs],
            'outputs': [tensor(n, t) for n, t in zip(names, outs)]}


def build(c):
    seed = zlib.crc32(c['name'].encode())
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Net(**c['net']).eval()
    # Spread the weights a little wider than PyTorch's default so that the
    # outputs are not all near zero.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.6, 0.6)
    return model, rng


def export(model, c, inputs, names):
    net = c['net']
    bf = net.get('batch_first', False)
    b_axis, t_axis = (0, 1) if bf else (1, 0)
    dyn = {}
    x_axes = {t_axis: 'time'} if c['fixed_batch'] else {b_axis: 'batch', t_axis: 'time'}
    dyn['input'] = x_axes
    if not c['fixed_batch']:
        for n, _ in inputs[1:]:
            dyn[n] = {0: 'batch'} if n == 'lengths' else {1: 'batch'}
    for n in names:
        if n == 'output':
            dyn[n] = {t_axis: 'time'} if c['fixed_batch'] else {b_axis: 'batch', t_axis: 'time'}
        elif n in ('h_n', 'c_n'):
            dyn[n] = {} if c['fixed_batch'] else {1: 'batch'}
        elif n == 'logits':
            if net['head'] == 'step':
                dyn[n] = {b_axis: 'batch', t_axis: 'time'}
            else:
                dyn[n] = {0: 'batch'}
    buf = io.BytesIO()
    torch.onnx.export(model, tuple(t for _, t in inputs), buf, input_names=[n for n, _ in inputs],
                      output_names=names, dynamic_axes=dyn, opset_version=c['opset'],
                      do_constant_folding=c['fold'])
    return buf.getvalue()


def generate(c):
    name = c['name']
    model, rng = build(c)
    batch, T = c['batch'], c['T']
    lengths = c['lengths']
    if lengths is not None:
        assert max(lengths) == T and len(lengths) == batch, name
    inputs = make_inputs(c, rng, batch, T, lengths)
    names = output_names(c)
    node_name = None
    try:
        data = export(model, c, inputs, names)
    except Exception as e:  # noqa: BLE001
        print(f'{name}: PyTorch cannot export it: {type(e).__name__}: {e}'.splitlines()[0])
        return None
    proto = onnx.load_from_string(data)
    if c['edit'] == 'truncate':
        data = data[:100]
    elif c['edit'] == 'empty':
        data = b''
    elif c['edit'] is not None:
        c['edit'](proto)
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
    if c['edit'] not in ('truncate', 'empty'):
        rnn = [n for n in proto.graph.node if n.op_type in ('LSTM', 'GRU', 'RNN')]
        node_name = rnn[0].name if rnn else None
    description = c['description']
    if c['net'].get('packed'):
        description += ('. The exporter sizes the zero initial state of every recurrent node to the '
                        'export batch (a constant expanded to [2, B, H]); served meaning: zeros for '
                        'any batch. ONNX Runtime itself refuses the solo runs (batch 1); their '
                        'outputs are PyTorch\'s (ort_check.js checks them at the export batch, the '
                        'sequence repeated)')
    msg = {'name': name, 'description': description, 'onnx_file': name + '.onnx',
           'torch_version': torch.__version__.split('+')[0], 'opset': c['opset']}
    if c['refuse'] is None:
        msg['batch'] = run(model, inputs, names)
        solos = []
        for b in range(batch):
            L = lengths[b] if lengths is not None else T
            one = []
            for n, t in inputs:
                if n == 'input':
                    bf = c['net'].get('batch_first', False)
                    t = t[b:b + 1, :L] if bf else t[:L, b:b + 1]
                elif n == 'lengths':
                    t = t[b:b + 1]
                else:
                    t = t[:, b:b + 1]
                one.append((n, t.contiguous()))
            solos.append(run(model, one, names))
        msg['solo'] = solos
    msg['tolerance'] = TOLERANCE
    if c['refuse'] is not None:
        errors = []
        for s in c['refuse']:
            if s.startswith('{node:'):  # the name of the first node of that op type
                op = s[len('{node:'):-1]
                s = next(n.name for n in proto.graph.node if n.op_type == op)
            errors.append(s.replace('{node}', node_name or '?'))
        msg['expected_error'] = errors
    with open(os.path.join(FIXTURES, name + '.onnx'), 'wb') as f:
        f.write(data)
    with open(os.path.join(FIXTURES, name + '.json'), 'w') as f:
        json.dump(msg, f, indent=1)
        f.write('\n')
    return proto


def describe(proto):
    ops = [n.op_type for n in proto.graph.node]
    return ' '.join(ops)


def main(argv):
    os.makedirs(FIXTURES, exist_ok=True)
    wanted = argv[1:]
    known = {c['name'] for c in CASES}
    for w in wanted:
        if w not in known:
            sys.exit(f'unknown case {w}; cases: {" ".join(sorted(known))}')
    if not wanted:
        for f in os.listdir(FIXTURES):
            if f.endswith('.onnx') or f.endswith('.json'):
                os.remove(os.path.join(FIXTURES, f))
    for c in CASES:
        if wanted and c['name'] not in wanted:
            continue
        proto = generate(c)
        if proto is not None and os.environ.get('VERBOSE'):
            print(f'{c["name"]}: {describe(proto)}')
        elif proto is not None:
            print(c['name'])


if __name__ == '__main__':
    main(sys.argv)
