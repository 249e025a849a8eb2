"""marks_check over every AUL frame (all seen in training) as read and with synthetic crosses; timing of the check.

Usage: OMP_NUM_THREADS=1 python benchmarks/us_liver_marks.py DATA"""
import csv, sys, time, numpy as np
from lesiondx.gate.us_liver import caliper_crosses
from lesiondx.us_liver.rois import read_frame
from lesiondx.data import mask_box
def cross(g, x, y, arm=8, val=255.0):
    hh, ww = g.shape
    g[max(0,y-arm):min(hh,y+arm+1), max(0,x-1):min(ww,x+2)] = val
    g[max(0,y-1):min(hh,y+2), max(0,x-arm):min(ww,x+arm+1)] = val
root=sys.argv[1].rstrip("/")+"/"
rows=list(csv.DictReader(open(root+'labels.csv')))
hits=[]; found=0; tried=0; secs=[]
for r in rows:
    t = read_frame(root+r['image'], root+r['lesion_mask'] if r['lesion_mask'] else None)
    t0=time.perf_counter(); c=caliper_crosses(t.grey); secs.append(time.perf_counter()-t0)
    if c: hits.append((r['image_id'], c[:3]))
    if t.lesion is not None:
        g=t.grey.copy(); b=mask_box(t.lesion); cy=(b.y1+b.y2)//2; cross(g,b.x1,cy); cross(g,b.x2-1,cy)
        tried += 1; found += bool(caliper_crosses(g))
print("clean frames with a hit", len(hits), "of", len(rows), hits[:10])
print("synthetic caliper frames detected", found, "of", tried)
print("caliper_crosses seconds median %.3f p90 %.3f" % (np.median(secs), np.quantile(secs, .9)))
