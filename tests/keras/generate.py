#!/usr/bin/python3
"""Writes the Keras-file fixtures of tests/keras/fixtures from the TF.js models.

Run with Debian's Python (python3-h5py, python3-numpy; no Keras needed):

    /usr/bin/python3 tests/keras/generate.py            # every case (old fixtures deleted first)
    /usr/bin/python3 tests/keras/generate.py CASE...    # only these cases

Each case takes one TensorFlow.js Layers model of tests/golden/tfjs_models/
(its model.json config and its float32 weights, copied bit for bit) and writes
the same model as the files Keras writes, in several exact layouts (see
LAYOUTS below and README.md): legacy HDF5 `.h5` from Keras 2.2, tf.keras 2.x
and Keras 3, and `.keras` zips from tf.keras 2.13, tf.keras 2.15, Keras 3.0
and Keras 3.10. Each case folder gets a case.json naming the expected outputs
(a biserve.test.GoldenCase) and the TF.js model it came from. No Keras ran:
the layouts follow ../shared/real-models/LAYOUTS.md and the real files there.

The output is byte-identical on rerun: HDF5 object times are off
(track_times=False on datasets; groups carry no times with HDF5's default
object-header version), zip members carry a fixed date.
"""

import copy
import io
import json
import os
import shutil
import sys
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(HERE, 'fixtures')
TFJS_MODELS = os.path.join(ROOT, 'tests', 'golden', 'tfjs_models')
GOLDEN_FIXTURES = os.path.join(ROOT, 'tests', 'golden', 'fixtures')
ZIP_DATE = (2025, 7, 21, 18, 31, 4)
DATE_SAVED = '2025-07-21@18:31:04'

# ----------------------------------------------------------------------------
# The model, read from a TF.js model.json into a small description:
#   {'functional': bool, 'name': str, 'features': F or None (token ids),
#    'state_inputs': [units...], 'outputs': [(layer index, tensor index)],
#    'layers': [layer dicts, see read_layer]}


def read_tfjs_model(case):
    folder = os.path.join(TFJS_MODELS, case)
    with open(os.path.join(folder, 'model.json')) as f:
        model_json = json.load(f)
    topology = model_json['modelTopology']
    config = topology.get('model_config', topology)
    # Weights: every manifest group's shards concatenated, weights in order.
    weights = {}
    for group in model_json['weightsManifest']:
        data = b''.join(
            open(os.path.join(folder, p), 'rb').read() for p in group['paths'])
        at = 0
        for w in group['weights']:
            assert w['dtype'] == 'float32', w
            count = int(np.prod(w['shape'])) if w['shape'] else 1
            array = np.frombuffer(data, dtype='<f4', count=count, offset=at)
            weights[w['name']] = array.reshape(w['shape']).copy()
            at += 4 * count
        assert at == len(data), (case, at, len(data))

    def layer_weights(name):
        found = [(k, v) for k, v in weights.items()
                 if k.split('/')[0] == name]
        return found

    body = config['config']
    entries = body['layers'] if isinstance(body, dict) else body
    model = {
        'functional': config['class_name'] in ('Model', 'Functional'),
        'features': None,
        'state_inputs': [],
        'layers': [],
        'outputs': [],
    }
    names = {}  # TF.js layer name -> index in model['layers'] (-1: inputs)
    input_names = []
    for entry in entries:
        cls = entry['class_name']
        cfg = entry['config']
        shape = cfg.get('batch_input_shape')
        if cls == 'InputLayer':
            input_names.append(cfg['name'])
            if len(input_names) == 1:
                model['features'] = shape[2] if len(shape) == 3 else None
            else:
                model['state_inputs'].append(shape[1])
            names[cfg['name']] = -1
            continue
        if shape is not None and not input_names:
            model['features'] = shape[2] if len(shape) == 3 else None
            input_names.append('(implicit)')
        layer = read_layer(cls, cfg)
        ws = layer_weights(cfg['name'])
        order = KERAS_WEIGHT_ORDER.get(cls)
        if order:
            # Keras' order (TF.js manifests list trainable weights first).
            rank = {k: i for i, k in enumerate(order)}
            ws = sorted(ws, key=lambda kv: rank[kv[0].split('/')[-1]])
        layer['weights'] = [v for _, v in ws]
        names[cfg['name']] = len(model['layers'])
        model['layers'].append(layer)
    for w in weights:
        assert w.split('/')[0] in names, (case, w)
    if model['functional']:
        for name, _, tensor in body['output_layers']:
            model['outputs'].append((names[name], tensor))
    return model


def read_golden_fixture(name):
    """The same description from a golden fixture's biserve model
    (tests/golden/fixtures/<name>.json): floats there are the shortest
    decimals that read back to the float32 values, so np.float32 restores
    them bit for bit."""
    with open(os.path.join(GOLDEN_FIXTURES, name + '.json')) as f:
        golden = json.load(f)
    spec = golden['model']

    def tensor(t):
        return np.array(t['values'], dtype=np.float32).reshape(t['shape'])

    def rnn(d):
        cfg = {'name': d['name'], 'units': d['units'],
               'activation': d['activation'],
               'recurrent_activation': d.get('recurrent_activation'),
               'use_bias': d.get('use_bias', False),
               'return_sequences': d.get('return_sequences', False),
               'return_state': d.get('return_state', False),
               'go_backwards': d.get('go_backwards', False),
               'reset_after': d.get('reset_after', False)}
        class_name = {'LSTM': 'LSTM', 'GRU': 'GRU',
                      'SIMPLE_RNN': 'SimpleRNN'}[d['cell']]
        w = d['weights']
        weights = [tensor(w['kernel']), tensor(w['recurrent_kernel'])]
        if 'bias' in w:
            weights.append(tensor(w['bias']))
        return rnn_config(cfg, class_name), weights

    model = {'functional': False, 'features': spec.get('input_dim') or None,
             'state_inputs': [], 'layers': [], 'outputs': []}
    for entry in spec['layers']:
        (kind, d), = entry.items()
        if kind == 'bidirectional':
            fwd, fw = rnn(d['layer'])
            if 'backward_layer' in d:
                bwd, bw = rnn(d['backward_layer'])
                same = False
            else:  # Keras' default backward layer: backward_weights only
                bwd, bw = None, rnn(dict(d['layer'],
                                         weights=d['backward_weights']))[1]
                same = True
            merge = d.get('merge_mode', 'concat')
            model['layers'].append({
                'kind': 'Bidirectional',
                'merge_mode': None if merge == 'none' else merge,
                'forward': fwd, 'backward': None if same else bwd,
                'weights': fw + bw})
        elif kind == 'dense':
            model['layers'].append({
                'kind': 'Dense', 'units': d['units'],
                'activation': d.get('activation', 'linear'),
                'use_bias': d.get('use_bias', False),
                'weights': [tensor(d['kernel'])] + (
                    [tensor(d['bias'])] if 'bias' in d else [])})
        elif kind == 'embedding':
            model['layers'].append({
                'kind': 'Embedding', 'input_dim': d['input_dim'],
                'output_dim': d['output_dim'],
                'mask_zero': d.get('mask_zero', False),
                'weights': [tensor(d['embeddings'])]})
        else:
            raise ValueError(kind)
    # Initial states, several outputs or states: a Functional model, as
    # Keras needs for them.
    bidis = [i for i, l in enumerate(model['layers'])
             if l['kind'] == 'Bidirectional']
    first = model['layers'][bidis[0]]
    last_index = bidis[-1]
    last = model['layers'][last_index]
    with_state = any(seq.get('initial_state') for seq in golden['sequences'])
    if with_state:
        for direction in (first['forward'], first['backward'] or
                          first['forward']):
            count = 2 if direction['class'] == 'LSTM' else 1
            model['state_inputs'] += [direction['units']] * count
    if with_state or last['forward']['return_state'] or \
            last['merge_mode'] is None:
        model['functional'] = True
        top = len(model['layers']) - 1
        if last['merge_mode'] is None and top == last_index:
            model['outputs'] = [(top, 0), (top, 1)]
        else:
            model['outputs'] = [(top, 0)]
        if last['forward']['return_state']:
            start = 2 if last['merge_mode'] is None else 1
            states = 0
            for direction in (last['forward'], last['backward'] or
                              last['forward']):
                states += 2 if direction['class'] == 'LSTM' else 1
            model['outputs'] += [(last_index, start + k)
                                 for k in range(states)]
    return model


def rnn_config(cfg, class_name):
    rnn = {
        'class': class_name,
        'name': cfg['name'],
        'units': cfg['units'],
        'activation': cfg['activation'],
        'use_bias': cfg['use_bias'],
        'return_sequences': cfg['return_sequences'],
        'return_state': cfg['return_state'],
        'go_backwards': cfg['go_backwards'],
    }
    if class_name != 'SimpleRNN':
        rnn['recurrent_activation'] = cfg['recurrent_activation']
    if class_name == 'GRU':
        rnn['reset_after'] = bool(cfg.get('reset_after', False))
    return rnn


KERAS_WEIGHT_ORDER = {
    'BatchNormalization': ['gamma', 'beta', 'moving_mean', 'moving_variance'],
    'LayerNormalization': ['gamma', 'beta'],
}


def read_layer(cls, cfg):
    if cls == 'Bidirectional':
        backward = cfg.get('backward_layer')
        return {
            'kind': 'Bidirectional',
            'merge_mode': cfg['merge_mode'],
            'forward': rnn_config(cfg['layer']['config'],
                                  cfg['layer']['class_name']),
            'backward': backward and rnn_config(backward['config'],
                                                backward['class_name']),
        }
    if cls == 'Dense':
        return {'kind': 'Dense', 'units': cfg['units'],
                'activation': cfg['activation'], 'use_bias': cfg['use_bias']}
    if cls == 'TimeDistributed':
        inner = cfg['layer']['config']
        assert cfg['layer']['class_name'] == 'Dense'
        return {'kind': 'TimeDistributed', 'units': inner['units'],
                'activation': inner['activation'],
                'use_bias': inner['use_bias']}
    if cls == 'Embedding':
        return {'kind': 'Embedding', 'input_dim': cfg['input_dim'],
                'output_dim': cfg['output_dim'],
                'mask_zero': bool(cfg.get('mask_zero'))}
    if cls == 'Masking':
        return {'kind': 'Masking', 'mask_value': float(cfg['mask_value'])}
    if cls == 'Dropout':
        return {'kind': 'Dropout', 'rate': float(cfg['rate'])}
    if cls == 'Activation':
        return {'kind': 'Activation', 'activation': cfg['activation']}
    if cls in ('BatchNormalization', 'LayerNormalization'):
        layer = {'kind': cls, 'epsilon': float(cfg['epsilon']),
                 'center': bool(cfg['center']), 'scale': bool(cfg['scale'])}
        if cls == 'BatchNormalization':
            layer['momentum'] = float(cfg['momentum'])
        # Normalized over the last axis (as the golden models are).
        axis = cfg['axis']
        assert axis == -1 or (isinstance(axis, list) and len(axis) == 1), axis
        return layer
    if cls in ('GlobalMaxPooling1D', 'GlobalAveragePooling1D'):
        return {'kind': cls}
    raise ValueError('layer ' + cls)


# ----------------------------------------------------------------------------
# Layer names as a given Keras version names them. `counters` is per model.

SNAKE = {
    'Bidirectional': 'bidirectional', 'Dense': 'dense',
    'TimeDistributed': 'time_distributed', 'Embedding': 'embedding',
    'Masking': 'masking', 'LSTM': 'lstm', 'GRU': 'gru',
    'SimpleRNN': 'simple_rnn', 'InputLayer': 'input_layer',
    'Dropout': 'dropout', 'SpatialDropout1D': 'spatial_dropout1d',
    'GaussianNoise': 'gaussian_noise', 'Sequential': 'sequential',
    'Functional': 'model', 'Activation': 'activation',
    'BatchNormalization': 'batch_normalization',
    'LayerNormalization': 'layer_normalization',
    'GlobalMaxPooling1D': 'global_max_pooling1d',
    'GlobalAveragePooling1D': 'global_average_pooling1d',
}
CELL = {'LSTM': 'lstm_cell', 'GRU': 'gru_cell', 'SimpleRNN': 'simple_rnn_cell'}


class Namer:
    """Keras' automatic names: `lstm`, `lstm_1`, ... (tf.keras, Keras 3), or
    `lstm_1`, `lstm_2`, ... (Keras 2.2), starting at `offset` (a session that
    made other models first)."""

    def __init__(self, one_based, offset=0):
        self.one_based = one_based
        self.offset = offset
        self.counts = {}

    def __call__(self, prefix):
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        n += self.offset
        if self.one_based:
            return '%s_%d' % (prefix, n + 1)
        return prefix if n == 0 else '%s_%d' % (prefix, n)


# ----------------------------------------------------------------------------
# Config JSON for one flavour. flavour: 'k22' (Keras 2.2, standalone), 'tfk'
# (tf.keras 2.x), 'k3' (Keras 3). Options: 'nested_module' (tf.keras 2.13+:
# nested objects as {module, class_name, config, registered_name}),
# 'dtype_policy' (Keras >= 3.4), 'bare_list' (Keras <= 2.2.2 Sequential).


class Flavour:

    def __init__(self, kind, version, nested_module=False, dtype_policy=False,
                 bare_list=False, input_layer=True, zip_config=False,
                 offset=0):
        self.kind = kind
        self.version = version
        self.nested_module = nested_module or kind == 'k3'
        self.dtype_policy = dtype_policy
        self.bare_list = bare_list
        self.input_layer = input_layer
        self.zip_config = zip_config  # every object with module (config.json)
        self.namer = Namer(kind == 'k22', offset)

    def dtype(self):
        if self.dtype_policy:
            return {'module': 'keras', 'class_name': 'DTypePolicy',
                    'config': {'name': 'float32'}, 'registered_name': None}
        return 'float32'

    def obj(self, module, class_name, config, top=False, build=None):
        """A nested object (initializer, wrapped layer) or a layer entry."""
        if (top and not self.zip_config) or (
                not top and not self.nested_module):
            return {'class_name': class_name, 'config': config}
        entry = {'module': module, 'class_name': class_name, 'config': config,
                 'registered_name': None}
        if build is not None and self.kind == 'k3' or (
                build is not None and self.zip_config):
            entry['build_config'] = {'input_shape': build}
        return entry

    def initializer(self, class_name, config):
        if self.kind == 'k22':
            return {'class_name': class_name, 'config': config}
        return self.obj('keras.initializers', class_name, config)


def rnn_entry(fl, rnn, name, go_backwards, input_shape, top_shape=None):
    c = {'name': name, 'trainable': True}
    if top_shape is not None:
        c['batch_input_shape'] = top_shape
    if fl.kind != 'k22':
        c['dtype'] = fl.dtype()
    c.update({'return_sequences': rnn['return_sequences'],
              'return_state': rnn['return_state'],
              'go_backwards': go_backwards, 'stateful': False,
              'unroll': False})
    if fl.kind == 'tfk':
        c['time_major'] = False
    if fl.kind == 'k3':
        c['zero_output_for_mask'] = rnn['return_sequences']
    c['units'] = rnn['units']
    c['activation'] = rnn['activation']
    if rnn['class'] != 'SimpleRNN':
        c['recurrent_activation'] = rnn['recurrent_activation']
    c['use_bias'] = rnn['use_bias']
    glorot = ('VarianceScaling', {'scale': 1.0, 'mode': 'fan_avg',
                                  'distribution': 'uniform', 'seed': None}) \
        if fl.kind == 'k22' else ('GlorotUniform', {'seed': None})
    c['kernel_initializer'] = fl.initializer(*glorot)
    c['recurrent_initializer'] = fl.initializer(
        'Orthogonal', {'gain': 1.0, 'seed': None})
    c['bias_initializer'] = fl.initializer('Zeros', {})
    if rnn['class'] == 'LSTM':
        c['unit_forget_bias'] = True
    for k in ('kernel_regularizer', 'recurrent_regularizer',
              'bias_regularizer', 'activity_regularizer', 'kernel_constraint',
              'recurrent_constraint', 'bias_constraint'):
        c[k] = None
    c['dropout'] = 0.0
    c['recurrent_dropout'] = 0.0
    if fl.kind == 'k3':
        c['seed'] = None
    else:
        c['implementation'] = 1 if (fl.kind == 'k22' or
                                    rnn['class'] == 'SimpleRNN') else 2
        if rnn['class'] == 'SimpleRNN':
            del c['implementation']
    if rnn['class'] == 'GRU':
        c['reset_after'] = rnn['reset_after']
    return fl.obj('keras.layers', rnn['class'], c,
                  build=input_shape if fl.kind == 'k3' else None)


def bidi_names(fl, layer):
    """(bidirectional name, forward RNN name, backward RNN name) in config."""
    name = fl.namer('bidirectional')
    fwd = fl.namer(SNAKE[layer['forward']['class']])
    bwd = None
    if layer['backward'] is not None:
        bwd = fl.namer(SNAKE[layer['backward']['class']])
    return name, fwd, bwd


def layer_config(fl, layer, names, input_shape, first_shape):
    """A layer's {class_name, config} entry. `first_shape`: the model's
    batch_input_shape when this layer carries it (no InputLayer)."""
    kind = layer['kind']
    name = names['name']
    c = {'name': name, 'trainable': True}
    if first_shape is not None:
        c['batch_input_shape'] = first_shape
    c['dtype'] = fl.dtype()
    if kind == 'Bidirectional':
        fwd, bwd = layer['forward'], layer['backward']
        if fl.kind == 'k3':
            c['merge_mode'] = layer['merge_mode']
            c['layer'] = rnn_entry(fl, fwd, 'forward_' + names['forward'],
                                   fwd['go_backwards'], input_shape)
            if bwd is None:
                c['backward_layer'] = rnn_entry(
                    fl, fwd, 'backward_' + names['forward'],
                    not fwd['go_backwards'], input_shape)
            else:
                c['backward_layer'] = rnn_entry(
                    fl, bwd, names['backward'], bwd['go_backwards'],
                    input_shape)
        else:
            c['layer'] = rnn_entry(fl, fwd, names['forward'],
                                   fwd['go_backwards'], None)
            c['merge_mode'] = layer['merge_mode']
            if bwd is not None:
                c['backward_layer'] = rnn_entry(fl, bwd, names['backward'],
                                                bwd['go_backwards'], None)
    elif kind in ('Dense', 'TimeDistributed'):
        glorot = fl.initializer('GlorotUniform', {'seed': None}) \
            if fl.kind != 'k22' else fl.initializer('VarianceScaling', {
                'scale': 1.0, 'mode': 'fan_avg', 'distribution': 'uniform',
                'seed': None})
        d = {'units': layer['units'], 'activation': layer['activation'],
             'use_bias': layer['use_bias'], 'kernel_initializer': glorot,
             'bias_initializer': fl.initializer('Zeros', {}),
             'kernel_regularizer': None, 'bias_regularizer': None,
             'activity_regularizer': None, 'kernel_constraint': None,
             'bias_constraint': None}
        if kind == 'Dense':
            c.update(d)
        else:
            inner = {'name': names['dense'], 'trainable': True}
            if fl.kind != 'k22':
                inner['dtype'] = fl.dtype()
            inner.update(d)
            c['layer'] = fl.obj('keras.layers', 'Dense', inner,
                                build=input_shape[:1] + input_shape[2:]
                                if fl.kind == 'k3' else None)
    elif kind == 'Embedding':
        c['input_dim'] = layer['input_dim']
        c['output_dim'] = layer['output_dim']
        c['embeddings_initializer'] = fl.initializer(
            'RandomUniform', {'minval': -0.05, 'maxval': 0.05, 'seed': None})
        c['embeddings_regularizer'] = None
        c['activity_regularizer'] = None
        c['embeddings_constraint'] = None
        c['mask_zero'] = layer['mask_zero']
        if fl.kind != 'k3':
            c['input_length'] = None
    elif kind == 'Masking':
        c['mask_value'] = layer['mask_value']
    elif kind in ('Dropout', 'SpatialDropout1D'):
        c['rate'] = layer['rate']
        if kind == 'Dropout':
            c['noise_shape'] = None
        c['seed'] = None
    elif kind == 'GaussianNoise':
        c['stddev'] = layer['stddev']
        if fl.kind == 'k3':
            c['seed'] = None
    elif kind == 'Activation':
        # Keras 3 serializes swish by its function's name, silu.
        c['activation'] = 'silu' if (
            fl.kind == 'k3' and layer['activation'] == 'swish') \
            else layer['activation']
    elif kind in ('BatchNormalization', 'LayerNormalization'):
        assert fl.kind != 'k22', kind
        # tf.keras writes a built layer's axis as the list of positive axes
        # ([2] after a 3D input); Keras 3 keeps BatchNormalization's int (-1)
        # and makes LayerNormalization's a list in build() ([-1]).
        if fl.kind != 'k3':
            c['axis'] = [len(input_shape) - 1]
        else:
            c['axis'] = -1 if kind == 'BatchNormalization' else [-1]
        if kind == 'BatchNormalization':
            c['momentum'] = layer['momentum']
        c['epsilon'] = layer['epsilon']
        c['center'] = layer['center']
        c['scale'] = layer['scale']
        if kind == 'LayerNormalization' and fl.kind == 'k3':
            c['rms_scaling'] = False
        c['beta_initializer'] = fl.initializer('Zeros', {})
        c['gamma_initializer'] = fl.initializer('Ones', {})
        if kind == 'BatchNormalization':
            c['moving_mean_initializer'] = fl.initializer('Zeros', {})
            c['moving_variance_initializer'] = fl.initializer('Ones', {})
        c['beta_regularizer'] = None
        c['gamma_regularizer'] = None
        c['beta_constraint'] = None
        c['gamma_constraint'] = None
        if kind == 'BatchNormalization' and fl.kind == 'k3':
            c['synchronized'] = False
    elif kind in ('GlobalMaxPooling1D', 'GlobalAveragePooling1D'):
        assert fl.kind != 'k22', kind
        c['data_format'] = 'channels_last'
        c['keepdims'] = False
    else:
        raise ValueError(kind)
    if fl.kind == 'k22' and first_shape is None:
        # Keras 2.2 writes dtype only on the layer given the input shape.
        del c['dtype']
    return c


def output_shape(layer, shape):
    """The Keras output shape of `layer` given its input `shape`."""
    kind = layer['kind']
    if kind == 'Embedding':
        return shape + [layer['output_dim']]
    if kind == 'Bidirectional':
        fwd, bwd = layer['forward'], layer['backward'] or layer['forward']
        units = fwd['units'] + bwd['units'] \
            if layer['merge_mode'] == 'concat' else fwd['units']
        if fwd['return_sequences']:
            return [None, shape[1], units]
        return [None, units]
    if kind in ('Dense', 'TimeDistributed'):
        return shape[:-1] + [layer['units']]
    if kind in ('GlobalMaxPooling1D', 'GlobalAveragePooling1D'):
        return [None, shape[-1]]
    return shape


# ----------------------------------------------------------------------------
# Weight paths.


def weight_names(fl, layer, names, stale, model_name, functional):
    """Legacy h5 weight_names of one layer: (names, arrays) in Keras order."""
    kind = layer['kind']
    ws = layer['weights']
    if kind == 'Bidirectional':
        half = len(ws) // 2
        out = []
        for d, rnn_name, rnn in (
                ('forward', names['forward'], layer['forward']),
                ('backward', names['backward'] or names['forward'],
                 layer['backward'] or layer['forward'])):
            keys = ['kernel', 'recurrent_kernel'] + (
                ['bias'] if rnn['use_bias'] else [])
            cell = CELL[rnn['class']]
            bidi = names['name']
            if stale:
                # Names from an earlier state of the session: a different
                # counter on every part, as real files carry them.
                bidi = 'bidirectional_9'
                rnn_name = SNAKE[rnn['class']] + '_25'
                cell = cell + '_25'
            if fl.kind == 'k22':
                prefix = '%s/%s_%s/' % (bidi, d, rnn_name)
            elif fl.kind == 'tfk':
                explicit = d == 'backward' and layer['backward'] is not None
                prefix = '%s/%s_%s/%s/' % (bidi, d, rnn_name, cell)
                if explicit and not stale:
                    prefix = '%s/%s_%s/%s/' % (bidi, d, rnn_name, cell)
            else:
                own = ('%s_%s' % (d, rnn_name)) if (
                    d == 'forward' or layer['backward'] is None) else rnn_name
                prefix = '%s/%s/%s/' % (bidi, own, cell)
                if not functional:
                    prefix = model_name + '/' + prefix
            out += [prefix + k for k in keys]
        assert len(out) == len(ws), (out, len(ws))
        if fl.kind != 'k3':
            out = [n + ':0' for n in out]
        return out
    base = names['name'] if not stale else names['name'] + '_7'
    if kind == 'Embedding':
        keys = ['embeddings']
    elif kind in ('Dense', 'TimeDistributed'):
        keys = ['kernel', 'bias'][:len(ws)]
    elif kind in ('BatchNormalization', 'LayerNormalization'):
        keys = (['gamma'] if layer['scale'] else []) + (
            ['beta'] if layer['center'] else [])
        if kind == 'BatchNormalization':
            keys += ['moving_mean', 'moving_variance']
    else:
        keys = []
    assert len(keys) == len(ws), (kind, keys, len(ws))
    if fl.kind == 'k3':
        if kind == 'TimeDistributed':
            base = base + '/' + names['dense']
        if not functional:
            base = model_name + '/' + base
        return [base + '/' + k for k in keys]
    return [base + '/' + k + ':0' for k in keys]


# ----------------------------------------------------------------------------
# Writers.


def string_array(values, fixed):
    if fixed:
        n = max(len(v.encode()) for v in values)
        return np.array([v.encode() for v in values], dtype='S%d' % n)
    return np.array(values, dtype=h5py.string_dtype('utf-8'))


def set_list_attr(obj, key, values, fixed):
    if not values:
        obj.attrs.create(key, np.zeros((0,), dtype=np.float64))
    else:
        obj.attrs.create(key, string_array(values, fixed))


def set_str_attr(obj, key, value):
    obj.attrs.create(key, value, dtype=h5py.string_dtype('utf-8'))


def dataset(group, path, array):
    group.create_dataset(path, data=np.asarray(array, dtype='<f4'),
                         track_times=False)


def h5_bytes(write):
    buffer = io.BytesIO()
    with h5py.File(buffer, 'w', track_order=False) as f:
        write(f)
    return buffer.getvalue()


class Built:
    """A model's config and per-layer names for one flavour."""

    def __init__(self, model, fl, extra_layers=()):
        self.model = model
        self.fl = fl
        self.layers = model['layers']
        self.names = []
        feat = model['features']
        self.input_shape = [None, None, feat] if feat is not None else \
            [None, None]
        functional = model['functional']
        self.model_name = fl.namer(
            'sequential' if not functional else
            ('functional' if fl.kind == 'k3' else 'model'))
        # Inputs.
        self.input_names = []
        count = 1 + len(model['state_inputs']) if functional else 1
        for i in range(count):
            if fl.kind == 'k3':
                self.input_names.append(fl.namer('input_layer'))
            elif functional:
                self.input_names.append('input_%d' % (i + 1))
        for layer in self.layers:
            kind = layer['kind']
            if kind == 'Bidirectional':
                n, f, b = bidi_names(fl, layer)
                self.names.append({'name': n, 'forward': f, 'backward': b})
            elif kind == 'TimeDistributed':
                n = fl.namer('time_distributed')
                self.names.append({'name': n, 'dense': fl.namer('dense')})
            else:
                self.names.append({'name': fl.namer(SNAKE[kind])})
        if not functional and fl.kind != 'k3':
            first = self.names[0]['name'] if self.names else 'x'
            self.input_names = [first + '_input']

    def config(self):
        fl, model = self.fl, self.model
        shapes = []
        shape = list(self.input_shape)
        for layer in self.layers:
            shapes.append(shape)
            shape = output_shape(layer, shape)
        entries = []
        if model['functional']:
            state_shapes = [[None, u] for u in model['state_inputs']]
            for i, name in enumerate(self.input_names):
                entries.append(self.input_entry(
                    name, self.input_shape if i == 0 else state_shapes[i - 1],
                    functional=True))
            previous = (self.input_names[0], 0)
            for i, layer in enumerate(self.layers):
                entry = self.entry(layer, self.names[i], shapes[i], None)
                entry['name'] = self.names[i]['name']
                args = [previous]
                if i == 0 and len(self.input_names) > 1:
                    args = [(n, 0) for n in self.input_names]
                entry['inbound_nodes'] = self.inbound(
                    args, shapes[i], initial_state=(
                        layer['kind'] == 'Bidirectional' and len(args) > 1))
                entries.append(entry)
                previous = (self.names[i]['name'], 0)
            outputs = [[self.names[i]['name'], 0, t]
                       for i, t in model['outputs']]
            inputs = [[n, 0, 0] for n in self.input_names]
            if fl.kind == 'k3' and fl.dtype_policy:
                # Keras 3.10 maps a single input or output tensor to a flat
                # [name, 0, 0] (Keras 3.0: always a list of them).
                if len(inputs) == 1:
                    inputs = inputs[0]
                if len(outputs) == 1:
                    outputs = outputs[0]
            body = {'name': self.model_name, 'trainable': True,
                    'layers': entries, 'input_layers': inputs,
                    'output_layers': outputs}
            if fl.kind == 'k3':
                body = {'name': self.model_name, 'trainable': True,
                        'layers': entries, 'input_layers': inputs,
                        'output_layers': outputs}
            class_name = 'Functional'
            module = 'keras.src.models.functional' if fl.kind == 'k3' else (
                'keras.src.engine.functional' if fl.version.startswith('2.15')
                else 'keras.engine.functional')
        else:
            carry = None
            if fl.input_layer:
                entries.append(self.input_entry(self.input_names[0],
                                                self.input_shape, False))
            else:
                carry = self.input_shape
            for i, layer in enumerate(self.layers):
                entries.append(self.entry(layer, self.names[i], shapes[i],
                                          carry if i == 0 else None))
            if fl.bare_list:
                body = entries
            else:
                body = {'name': self.model_name}
                if fl.kind == 'k3':
                    body['trainable'] = True
                    body['dtype'] = fl.dtype()
                body['layers'] = entries
            class_name = 'Sequential'
            module = 'keras'
        top = {'class_name': class_name, 'config': body}
        if fl.zip_config:
            top = {'module': module, 'class_name': class_name, 'config': body,
                   'registered_name': 'Functional' if model['functional']
                   else None}
            if fl.kind == 'k3' or model['functional']:
                top['build_config'] = {'input_shape': self.input_shape}
        return top

    def input_entry(self, name, shape, functional):
        fl = self.fl
        if fl.kind == 'k3':
            c = {'batch_shape': shape, 'dtype': 'float32', 'sparse': False}
            if fl.dtype_policy:
                c['ragged'] = False
            c['name'] = name
        else:
            c = {'batch_input_shape': shape, 'dtype': 'float32',
                 'sparse': False, 'ragged': False, 'name': name}
        entry = self.fl.obj('keras.layers', 'InputLayer', c, top=True)
        if functional:
            entry['name'] = name
            entry['inbound_nodes'] = []
        return entry

    def entry(self, layer, names, shape, first_shape):
        c = layer_config(self.fl, layer, names, shape, first_shape)
        return self.fl.obj('keras.layers', layer['kind'], c, top=True,
                           build=shape)

    def inbound(self, args, shape, initial_state):
        if self.fl.kind != 'k3':
            kwargs = {'initial_state': None, 'constants': None} \
                if initial_state else {}
            return [[[name, node, 0, kwargs] for name, node in args]]

        def tensor(name, s):
            return {'class_name': '__keras_tensor__',
                    'config': {'shape': s, 'dtype': 'float32',
                               'keras_history': [name, 0, 0]}}
        main = tensor(args[0][0], shape)
        kwargs = {}
        if initial_state:
            kwargs['initial_state'] = [
                tensor(n, [None, u])
                for (n, _), u in zip(args[1:], self.model['state_inputs'])]
        else:
            kwargs['mask'] = None
        return [{'args': [main], 'kwargs': kwargs}]


def legacy_h5(built, keras_version, fixed_strings, stale=False,
              compiled=False):
    """model.save('m.h5'): root attributes and model_weights; with
    `compiled`, a training_config attribute and an optimizer_weights group
    (what a compiled, trained model carries; an importer ignores them)."""
    fl = built.fl
    config = built.config()
    functional = built.model['functional']
    stale_model = 'sequential_3'

    def write(f):
        set_str_attr(f, 'keras_version', keras_version)
        set_str_attr(f, 'backend', 'tensorflow')
        set_str_attr(f, 'model_config', json.dumps(config))
        if compiled:
            set_str_attr(f, 'training_config', json.dumps({
                'loss': 'mse', 'metrics': None, 'weighted_metrics': None,
                'loss_weights': None, 'optimizer_config': {
                    'class_name': 'Adam', 'config': {
                        'name': 'Adam', 'learning_rate': 0.001}}}))
        mw = f.create_group('model_weights')
        layer_names = []
        groups = []
        if functional:
            for n in built.input_names:
                layer_names.append(n)
                groups.append((n, [], []))
        for layer, names in zip(built.layers, built.names):
            wn = weight_names(fl, layer, names, stale,
                              stale_model if stale else built.model_name,
                              functional)
            layer_names.append(names['name'])
            groups.append((names['name'], wn, layer['weights']))
        set_list_attr(mw, 'layer_names', layer_names, fixed_strings)
        set_str_attr(mw, 'backend', 'tensorflow')
        set_str_attr(mw, 'keras_version', keras_version)
        # Keras creates the groups in model order; HDF5 lists them by name.
        for name, wn, arrays in groups:
            g = mw.create_group(name)
            set_list_attr(g, 'weight_names', wn, fixed_strings)
            for n, a in zip(wn, arrays):
                dataset(g, n, a)
        if fl.kind != 'k22':
            g = mw.create_group('top_level_model_weights')
            set_list_attr(g, 'weight_names', [], fixed_strings)
        if compiled:
            g = f.create_group('optimizer_weights')
            set_list_attr(g, 'weight_names', ['Adam/iter:0'], fixed_strings)
            g.create_dataset('Adam/iter:0', data=np.int64(120),
                             track_times=False)
    return h5_bytes(write)


def keras_zip(built, keras_version, container='layers', double_count=False,
              wrapper_layer_group=False, vars_names=False):
    """model.save('m.keras'): metadata.json, config.json, model.weights.h5."""
    config = built.config()
    model = built.model

    def vars_group(parent, path, name, arrays=()):
        g = parent.create_group(path + '/vars') if path else \
            parent.create_group('vars')
        if vars_names:
            set_str_attr(g, 'name', name)
        for i, a in enumerate(arrays):
            dataset(g, str(i), a)

    def write(f):
        # Model root first (Keras walks the model's own variables, then its
        # attributes in order).
        saveables = []  # (class snake name, writer)
        if model['functional']:
            for n in built.input_names:
                saveables.append(('input_layer', n, None, None))
        for layer, names in zip(built.layers, built.names):
            saveables.append((SNAKE[layer['kind']], names['name'], layer,
                              names))
            # tf.keras 2.12-2.14: the dict lists a layer with weights as
            # layer_with_weights-i, then as layer-j; the counter runs on.
            if double_count and layer['weights']:
                saveables.append((SNAKE[layer['kind']], names['name'], layer,
                                  names))
        counters = {}
        top = f.create_group(container)
        for snake, name, layer, names in saveables:
            n = counters.get(snake, 0)
            counters[snake] = n + 1
            group_name = snake if n == 0 else '%s_%d' % (snake, n)
            g = top.create_group(group_name)
            if layer is None:
                vars_group(g, '', name)
                continue
            kind = layer['kind']
            ws = layer['weights']
            if kind == 'Bidirectional':
                half = len(ws) // 2
                fwd = layer['forward']
                bwd = layer['backward'] or fwd
                bidi_fwd_name = ('forward_' + names['forward']) \
                    if built.fl.kind == 'k3' else names['forward']
                bidi_bwd_name = ('backward_' + names['forward']) \
                    if layer['backward'] is None else names['backward']
                # Attribute walk order (Keras 3 and 2.15: sorted dir()):
                # backward_layer, forward_layer, layer.
                vars_group(g, 'backward_layer/cell', CELL[bwd['class']],
                           ws[half:])
                vars_group(g, 'backward_layer', bidi_bwd_name)
                vars_group(g, 'forward_layer/cell', CELL[fwd['class']],
                           ws[:half])
                vars_group(g, 'forward_layer', bidi_fwd_name)
                if wrapper_layer_group:
                    vars_group(g, 'layer/cell', CELL[fwd['class']])
                    vars_group(g, 'layer', names['forward'])
                vars_group(g, '', name)
            elif kind == 'TimeDistributed':
                vars_group(g, 'layer', names['dense'], ws)
                vars_group(g, '', name)
            else:
                vars_group(g, '', name, ws)
        vars_group(f, '', built.model_name)
        if vars_names:
            # Keras >= 3.6 with a compiled model: the optimizer's variables
            # (iteration count, learning rate) beside layers/.
            opt = f.create_group('optimizer/vars')
            set_str_attr(opt, 'name', 'adam')
            opt.create_dataset('0', data=np.int64(120), track_times=False)
            opt.create_dataset('1', data=np.float32(0.001), track_times=False)

    weights = h5_bytes(write)
    metadata = json.dumps({'keras_version': keras_version,
                           'date_saved': DATE_SAVED})
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', compression=zipfile.ZIP_STORED) as z:
        for name, data in (('metadata.json', metadata.encode()),
                           ('config.json', json.dumps(config).encode()),
                           ('model.weights.h5', weights)):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o600 << 16
            z.writestr(info, data)
    return out.getvalue()


# ----------------------------------------------------------------------------
# Layouts: file name -> (description, writer(model) -> bytes).


def layout_writers():
    def h5_k22(model, offset=1):
        fl = Flavour('k22', '2.2.4', input_layer=False)
        return legacy_h5(Built(model, fl), '2.2.4', fixed_strings=True,
                         stale=True)

    def h5_k21(model):
        fl = Flavour('k22', '2.1.6', input_layer=False, bare_list=True)
        return legacy_h5(Built(model, fl), '2.1.6', fixed_strings=True)

    def h5_tfk(version, stale):
        def write(model):
            fl = Flavour('tfk', version,
                         nested_module=version.startswith('2.15'))
            return legacy_h5(Built(model, fl), version, fixed_strings=False,
                             stale=stale, compiled=stale)
        return write

    def h5_k3(model):
        fl = Flavour('k3', '3.10.0', dtype_policy=True)
        return legacy_h5(Built(model, fl), '3.10.0', fixed_strings=False,
                         stale=True)

    def zip_k3_10(model):
        fl = Flavour('k3', '3.10.0', dtype_policy=True, zip_config=True)
        return keras_zip(Built(model, fl), '3.10.0', vars_names=True)

    def zip_k3_0(model):
        fl = Flavour('k3', '3.0.5', zip_config=True)
        return keras_zip(Built(model, fl), '3.0.5', wrapper_layer_group=True)

    def zip_tfk(version):
        def write(model):
            fl = Flavour('tfk', version, nested_module=True, zip_config=True)
            old = version < '2.15'
            return keras_zip(Built(model, fl), version,
                             container='_layer_checkpoint_dependencies'
                             if old else 'layers',
                             double_count=old, wrapper_layer_group=True)
        return write

    return {
        'keras2.2.4.h5': (
            'legacy HDF5 as Keras 2.2.4 writes it: fixed-length S<n> string '
            'arrays, weight paths <bidi>/forward_<rnn>/kernel:0, no '
            'InputLayer (batch_input_shape on the first layer); stale '
            'weight names (bidirectional_9, lstm_25)', h5_k22),
        'keras2.1.6.h5': (
            'legacy HDF5 as Keras 2.1.6 writes it: fixed-length strings, '
            'Sequential config a bare list of layers', h5_k21),
        'tf_keras2.15.0.h5': (
            'legacy HDF5 as tf.keras 2.15 writes it: variable-length string '
            'attributes, weight paths <bidi>/forward_<rnn>/<cell>/kernel:0, '
            'nested {module, class_name, config, registered_name} objects, '
            'top_level_model_weights', h5_tfk('2.15.0', False)),
        'tf_keras2.9.0.h5': (
            'legacy HDF5 as tf.keras 2.9 writes it, with stale weight names '
            '(bidirectional_9/forward_lstm_25/lstm_cell_25/kernel:0, '
            'dense_7/kernel:0), compiled: training_config and '
            'optimizer_weights', h5_tfk('2.9.0', True)),
        'keras3.10.0.h5': (
            'Keras 3.10 legacy HDF5: weight names are variable paths without '
            ':0 (sequential/bidirectional/forward_lstm/lstm_cell/kernel), '
            'DTypePolicy dicts, Keras 3 Bidirectional config; stale '
            'weight names (sequential_3/bidirectional_9/forward_lstm_25/'
            'lstm_cell_25/kernel in a model named sequential)', h5_k3),
        'keras3.10.0.keras': (
            '.keras zip as Keras 3.10 writes it: DTypePolicy dicts, explicit '
            'forward_/backward_ layer configs, layers/<class>[_k]/'
            'forward_layer/cell/vars/0..2, vars@name attributes, '
            'optimizer/vars', zip_k3_10),
        'keras3.0.5.keras': (
            '.keras zip as Keras 3.0 writes it: dtype strings, empty '
            'layer/cell/vars groups of the wrapped layer', zip_k3_0),
        'tf_keras2.13.1.keras': (
            '.keras zip as tf.keras 2.13 writes it: '
            '_layer_checkpoint_dependencies/ container, layers with weights '
            'counted twice (the same weights under bidirectional and '
            'bidirectional_1, the second Bidirectional at bidirectional_2)',
            zip_tfk('2.13.1')),
        'tf_keras2.15.0.keras': (
            '.keras zip as tf.keras 2.15 writes it: layers/, Keras 2 config '
            '(backward_layer only when given), empty layer/ groups',
            zip_tfk('2.15.0')),
    }


# ----------------------------------------------------------------------------
# Cases: (case name, TF.js model, file names, options).

CASES = [
    ('tfjs_lstm_concat_seq_td_softmax', {
        'files': ['keras2.1.6.h5', 'keras3.10.0.keras']}),
    ('tfjs_gru_softsign_sum_last_dense_sigmoid', {
        # hard_sigmoid: Keras 2 writers only (Keras 3's differs).
        'files': ['tf_keras2.15.0.h5', 'tf_keras2.15.0.keras',
                  'keras2.2.4.h5']}),
    ('tfjs_simple_rnn_relu_ave_seq', {
        'files': ['keras3.10.0.h5', 'keras3.0.5.keras', 'keras2.2.4.h5']}),
    ('tfjs_lstm_elu_mul_seq', {
        'files': ['tf_keras2.9.0.h5', 'keras3.10.0.keras']}),
    ('tfjs_lstm_swish_none_seq', {
        'files': ['keras3.10.0.h5', 'keras3.10.0.keras',
                  'tf_keras2.15.0.keras']}),
    ('tfjs_stack_lstm_gru_selu_dense_linear', {
        'files': ['tf_keras2.13.1.keras', 'keras3.0.5.keras',
                  'tf_keras2.15.0.h5']}),
    ('tfjs_embedding_gru_softplus_concat_last', {
        'files': ['keras2.2.4.h5', 'tf_keras2.13.1.keras']}),
    ('tfjs_embedding_mask_zero_lstm_concat_seq', {
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras'],
        'keras_masking': True}),
    ('tfjs_masking_gru_last_dense_relu', {
        'files': ['keras3.10.0.h5', 'tf_keras2.15.0.keras']}),
    ('tfjs_masking_simple_rnn_none_seq_state', {
        'files': ['tf_keras2.9.0.h5', 'keras3.10.0.keras'],
        'keras_masking': True}),
    ('tfjs_initial_state_lstm_seq_state_td_tanh', {
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras']}),
    ('tfjs_gru_linear_go_backwards_concat_seq', {
        'files': ['keras3.10.0.h5', 'tf_keras2.13.1.keras']}),
    ('tfjs_lstm_no_bias_hard_sigmoid_sum_last', {
        'files': ['tf_keras2.9.0.h5', 'keras2.1.6.h5']}),
    ('keras_gru_reset_after_concat_seq_td_softmax', {
        'files': ['keras3.10.0.keras', 'keras3.0.5.keras',
                  'tf_keras2.15.0.h5']}),
    ('keras_lstm_backward_layer_relu_concat_seq', {
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras',
                  'keras3.10.0.h5']}),
    ('keras_lstm_backward_layer_gru_concat_seq', {
        'files': ['keras3.10.0.h5', 'keras3.0.5.keras', 'tf_keras2.9.0.h5']}),
    ('keras_functional_initial_state_lstm_seq_state_td_sigmoid', {
        'files': ['tf_keras2.15.0.keras', 'keras3.10.0.h5',
                  'tf_keras2.13.1.keras']}),
    ('keras_embedding_mask_zero_gru_reset_after_concat_seq', {
        'files': ['tf_keras2.15.0.keras', 'keras3.10.0.keras',
                  'tf_keras2.9.0.h5']}),
    ('keras_stack_lstm_simple_rnn_dense_softmax_sharded', {
        'files': ['keras2.2.4.h5', 'keras3.10.0.keras', 'keras3.0.5.keras']}),
    # Golden fixtures (tests/golden/fixtures/) that no TF.js model has.
    ('golden_gru_backward_layer_elu_sum', {
        'golden': 'gru_backward_layer_elu_sum',
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras',
                  'tf_keras2.13.1.keras']}),
    ('golden_gru_reset_after_true_none_seq_state', {
        'golden': 'gru_reset_after_true_none_seq_state',
        'files': ['keras3.0.5.keras', 'tf_keras2.15.0.h5',
                  'keras3.10.0.h5']}),
    ('golden_gru_reset_after_true_initial_state_return_state', {
        'golden': 'gru_reset_after_true_initial_state_return_state',
        'files': ['keras3.10.0.h5', 'tf_keras2.13.1.keras']}),
    ('golden_simple_rnn_forward_go_backwards_selu_state', {
        'golden': 'simple_rnn_forward_go_backwards_selu_state',
        'files': ['keras3.0.5.keras', 'tf_keras2.9.0.h5']}),
    ('golden_stack_gru_simple_rnn_state_dense_tanh', {
        'golden': 'stack_gru_simple_rnn_state_dense_tanh',
        'files': ['tf_keras2.15.0.keras', 'keras3.10.0.keras']}),
    ('golden_embedding_gru_dense_relu_linear', {
        'golden': 'embedding_gru_dense_relu_linear',
        'files': ['tf_keras2.9.0.h5', 'tf_keras2.15.0.keras']}),
    # Identity layers at inference between a golden model's layers.
    ('dropout_stack_lstm_gru_selu_dense_linear', {
        'source': 'tfjs_stack_lstm_gru_selu_dense_linear',
        'insert': [(0, {'kind': 'SpatialDropout1D', 'rate': 0.25}),
                   (1, {'kind': 'Dropout', 'rate': 0.5}),
                   (2, {'kind': 'GaussianNoise', 'stddev': 0.1})],
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras'],
        'needs': ['dropout']}),
    ('dropout_gru_reset_after_concat_seq_td_softmax', {
        'source': 'keras_gru_reset_after_concat_seq_td_softmax',
        'insert': [(1, {'kind': 'Dropout', 'rate': 0.2})],
        'files': ['keras3.10.0.h5', 'tf_keras2.15.0.keras'],
        'needs': ['dropout']}),
    # Normalization, pooling and Activation layers after the recurrent core.
    ('tfjs_lstm_norm_dropout_average_pool_dense', {
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras',
                  'tf_keras2.15.0.keras', 'keras3.10.0.h5'],
        'needs': ['dropout']}),
    ('tfjs_gru_max_pool_batch_norm', {
        'files': ['tf_keras2.9.0.h5', 'keras3.10.0.keras',
                  'tf_keras2.15.0.keras', 'keras3.0.5.keras']}),
    ('keras_masking_lstm_batch_norm_dropout_average_pool_dense', {
        'files': ['tf_keras2.15.0.h5', 'keras3.10.0.keras',
                  'tf_keras2.15.0.keras', 'tf_keras2.13.1.keras'],
        'needs': ['dropout']}),
]


def keras_masking_expected(case, model, golden):
    """The TF.js expected outputs with Keras' masked-step outputs: with
    return_sequences, Keras' Bidirectional outputs zeros at masked steps in
    both directions (zero_output_for_mask); TF.js repeats the last output.
    Unmasked steps and final states are the same in both."""
    golden = copy.deepcopy(golden)
    first = model['layers'][0]
    bidi = [l for l in model['layers'] if l['kind'] == 'Bidirectional']
    assert len(bidi) == 1 and bidi[0]['forward']['return_sequences']
    assert model['layers'][-1]['kind'] == 'Bidirectional'
    golden['name'] = case
    golden['reference'] += ' (Keras masked-step outputs: zeros)'
    golden['description'] += (
        '. Expected outputs: TensorFlow.js\' with the masked steps set to '
        'zero in both directions, as Keras\' Bidirectional outputs them')
    for seq, result in zip(golden['sequences'], golden['expected']):
        length = int(seq['length'])
        if first['kind'] == 'Embedding':
            masked = [t == 0 for t in seq['token_ids']]
        else:
            f = np.array(seq['features'], dtype=np.float32).reshape(length, -1)
            masked = list(np.all(f == first['mask_value'], axis=1))
        assert any(masked) or length < 3, (case, seq)
        for key in ('output', 'forward', 'backward'):
            if key not in result:
                continue
            t = result[key]
            assert t['shape'][0] == length
            width = int(t['shape'][1])
            values = t['values']
            for step, m in enumerate(masked):
                if m:
                    values[step * width:(step + 1) * width] = [0] * width
    return golden


def write_case(case, options, writers):
    source = options.get('source', case)
    golden_fixture = options.get('golden')
    model = read_golden_fixture(golden_fixture) if golden_fixture else \
        read_tfjs_model(source)
    for at, layer in sorted(options.get('insert', []), key=lambda x: -x[0]):
        model['layers'].insert(at, dict(layer, weights=[]))
    folder = os.path.join(FIXTURES, case)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    expected = 'tests/golden/tfjs_models/%s/expected.json' % source
    tfjs_model = 'tests/golden/tfjs_models/%s/model.json' % source
    same_as_tfjs = True
    if golden_fixture:
        # No TF.js model: the golden fixture's own biserve model and
        # expected outputs.
        expected = 'tests/golden/fixtures/%s.json' % golden_fixture
        tfjs_model = ''
    if options.get('keras_masking'):
        with open(os.path.join(ROOT, expected)) as f:
            golden = json.load(f)
        golden = keras_masking_expected(case, model, golden)
        with open(os.path.join(folder, 'expected.json'), 'w') as f:
            json.dump(golden, f, indent=1)
            f.write('\n')
        expected = 'tests/keras/fixtures/%s/expected.json' % case
        same_as_tfjs = False
    files = []
    for name in options['files']:
        description, writer = writers[name]
        data = writer(model)
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(data)
        files.append({'file': name, 'layout': description})
    case_json = {
        'name': case,
        'expected': expected,
        'tfjs_model': tfjs_model,
        # TF.js' masked-step outputs differ from Keras' (see
        # tests/golden/tfjs_models/README.md, "Masking").
        'same_outputs_as_tfjs': same_as_tfjs,
        'needs': options.get('needs', []),
        'files': files,
    }
    if options.get('insert'):
        case_json['inserted_layers'] = [
            '%s before layer %d' % (l['kind'], at)
            for at, l in options['insert']]
    with open(os.path.join(folder, 'case.json'), 'w') as f:
        json.dump(case_json, f, indent=1)
        f.write('\n')


def main(argv):
    writers = layout_writers()
    selected = argv[1:]
    known = dict(CASES)
    for name in selected:
        if name not in known:
            sys.exit('unknown case ' + name)
    if not selected:
        shutil.rmtree(FIXTURES, ignore_errors=True)
    os.makedirs(FIXTURES, exist_ok=True)
    for case, options in CASES:
        if selected and case not in selected:
            continue
        write_case(case, options, writers)
        print(case)


if __name__ == '__main__':
    main(sys.argv)
