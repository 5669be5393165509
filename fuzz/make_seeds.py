#!/usr/bin/env python3
"""fuzz/make_seeds.py : regenerates the hand-made seed inputs of fuzz/corpus/
(npy, safetensors, profile_csv). Needs numpy. The config seeds are raw bytes
written by fuzz_config.c's layout (see there); profile slices come from
../shared/data/profiles when present."""
import io, json, os, struct, sys
import numpy as np
from numpy.lib import format as F

root = os.path.dirname(os.path.abspath(__file__))

d = os.path.join(root, 'corpus', 'npy')
os.makedirs(d, exist_ok=True)
def npy(name, arr, version=None):
    b = io.BytesIO()
    if version: F.write_array(b, arr, version=version)
    else: np.save(b, arr, allow_pickle=False)
    open(os.path.join(d, name), 'wb').write(b.getvalue())
npy('f32_2x3.npy', np.arange(6, dtype='<f4').reshape(2, 3))
npy('f16_hnd.npy', np.linspace(-1, 1, 24).astype('<f2').reshape(2, 3, 4))
npy('u2_bf16_bnhd.npy', (np.arange(16, dtype='<u2') + 0x3f80).reshape(1, 2, 2, 4))
npy('f32_scalar.npy', np.array(3.5, dtype='<f4'))
npy('f32_empty.npy', np.zeros((0, 4), dtype='<f4'))
npy('f32_vec.npy', np.array([1, 2, 3], dtype='<f4'))
npy('f64_unsupported.npy', np.zeros(2, dtype='<f8'))
npy('f32_big_endian.npy', np.zeros(2, dtype='>f4'))
npy('f32_fortran.npy', np.asfortranarray(np.zeros((2, 3), dtype='<f4')))
npy('v2_rank4.npy', np.ones((1, 2, 3, 4), dtype='<f4'), (2, 0))
npy('v3.npy', np.ones((2, 2), dtype='<f4'), (3, 0))
raw = open(os.path.join(d, 'f32_2x3.npy'), 'rb').read()
open(os.path.join(d, 'truncated.npy'), 'wb').write(raw[:-5])
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }"
hdr = hdr + ' ' * (64 - 10 - len(hdr) - 1) + '\n'
open(os.path.join(d, 'py2_long.npy'), 'wb').write(
    b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode() + b'\0' * 8)

d = os.path.join(root, 'corpus', 'safetensors')
os.makedirs(d, exist_ok=True)
def st(name, tensors=None, meta=None, pad=0, raw_header=None, tail=b''):
    hdr, data = {}, b''
    if meta is not None: hdr['__metadata__'] = meta
    for n, (dt, shape, payload) in (tensors or {}).items():
        hdr[n] = {'dtype': dt, 'shape': shape, 'data_offsets': [len(data), len(data) + len(payload)]}
        data += payload
    h = raw_header if raw_header is not None else json.dumps(hdr).encode()
    h += b' ' * pad
    open(os.path.join(d, name), 'wb').write(struct.pack('<Q', len(h)) + h + data + tail)
st('qkv_f32.safetensors', {'q': ('F32', [1, 2, 3, 4], np.arange(24, dtype='<f4').tobytes()),
                           'k': ('F32', [1, 2, 3, 4], np.ones(24, dtype='<f4').tobytes()),
                           'v': ('F32', [2, 3, 4], np.zeros(24, dtype='<f4').tobytes())},
   meta={'format': 'pt'})
st('mixed.safetensors', {'a': ('F16', [3], np.ones(3, dtype='<f2').tobytes()),
                         'b': ('BF16', [2, 2], b'\x80\x3f' * 4),
                         'c': ('F32', [], b'\0\0\x80\x3f'),
                         'e': ('F32', [0, 5], b'')}, pad=5)
st('unaligned.safetensors', {'h': ('F16', [1], b'\0\x3c'),
                             'f': ('F32', [2], np.ones(2, dtype='<f4').tobytes())})
st('unknown_dtype.safetensors', {'x': ('F64', [1], b'\0' * 8)})
st('overlap.safetensors', raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
   b'"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', tail=b'\0' * 8)
st('dup.safetensors', raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
   b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', tail=b'\0' * 4)
st('escape.safetensors', raw_header=b'{"q\\u00e9\\n\\"x":{"dtype":"F32","shape":[1],'
   b'"data_offsets":[0,4]},"__metadata__":{"k":"v"}}', tail=b'\0' * 4)
st('empty_obj.safetensors', raw_header=b'{}')
open(os.path.join(d, 'hlen_huge.safetensors'), 'wb').write(struct.pack('<Q', 1 << 62) + b'{}')

d = os.path.join(root, 'corpus', 'profile_csv')
os.makedirs(d, exist_ok=True)
def csv(name, text):
    open(os.path.join(d, name), 'wb').write(text.encode() if isinstance(text, str) else text)
grid = ''.join(f'{s},{l},{h},{(s * 7 + l * 3 + h) % 100 / 100:.4g}\n'
               for s in range(1, 4) for l in range(2) for h in range(2))
csv('grid_3x2x2.csv', 'Step,Layer,Head,Sparsity\n' + grid)
csv('crlf_bom.csv', b'\xef\xbb\xbf' + ('Step,Layer,Head,Sparsity\n' + grid).replace('\n', '\r\n').encode())
csv('gap.csv', 'Step,Layer,Head,Sparsity\n1,0,0,0.5\n1,0,1,0.5\n2,0,0,0.5\n')
csv('dup.csv', 'Step,Layer,Head,Sparsity\n1,0,0,0.5\n1,0,0,0.6\n')
csv('bad_value.csv', 'Step,Layer,Head,Sparsity\n1,0,0,1.5\n')
csv('step0.csv', 'Step,Layer,Head,Sparsity\n0,0,0,0.5\n')
csv('header_only.csv', 'Step,Layer,Head,Sparsity\n')
csv('nan.csv', 'Step,Layer,Head,Sparsity\n1,0,0,nan\n')
csv('fields.csv', 'Step,Layer,Head,Sparsity\n1,0,0,0.5,7\n1,0\n')
csv('one.csv', 'Step,Layer,Head,Sparsity\n1,0,0,1e-3\n\n\n')
# slices of the published profiles: the first lines of each (complete grids
# of step 1 for the first layers), a few hundred lines each
prof = os.path.join(root, '..', '..', 'shared', 'data', 'profiles')
if os.path.isdir(prof):
    for f in sorted(os.listdir(prof)):
        if not f.endswith('.csv'): continue
        lines = open(os.path.join(prof, f)).read().splitlines(True)
        heads = 1 + max(int(l.split(',')[2]) for l in lines[1:2000])
        keep = 1 + heads * max(1, 300 // heads)
        csv('real_' + f, ''.join(lines[:keep]))
print('seeds written under', os.path.join(root, 'corpus'))
