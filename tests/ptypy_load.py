"""Load a .ptyd with ptypy's PtydScan to end of scan; dump frames/masks/positions/meta to an npz."""
import sys, numpy as np
from ptypy.core.data import PtydScan
from ptypy.utils import Param
from ptypy import utils as u
u.verbose.set_level(0)
src, out = sys.argv[1], sys.argv[2]
ps = PtydScan(Param(dfile=src, source='file'))
ps.initialize()
frames, masks, pos, idx = [], [], [], []
meta = None
while True:
    msg = ps.auto(7)
    if msg in (ps.EOS, ps.WAIT):
        break
    meta = msg['common']
    for it in msg['iterable']:
        frames.append(it['data']); masks.append(it['mask']); pos.append(it['position']); idx.append(it['index'])
np.savez(out, data=np.array(frames), mask=np.array(masks), positions=np.array(pos), indices=np.array(idx),
         center=np.asarray(meta['center'], float), shape=np.asarray(meta['shape']), psize=np.asarray(meta['psize'], float),
         energy=meta['energy'], distance=meta['distance'], num_frames=meta['num_frames'], label=str(meta['label']), last=str(msg))
print("ptypy read", len(frames), "frames; last message", msg)
