#!/usr/bin/env python3
"""Splits a `perf record --call-graph dwarf` profile of
`kiln-instantiate-loop` into the parts of an instantiation, for the
breakdown in `crates/api/src/pooling.rs`:

    perf record -F 6000 --call-graph dwarf,16384 -o perf.data \
        target/release/kiln-instantiate-loop small pooling 300000
    perf script -i perf.data -F ip,sym | python3 perf-buckets.py CPU_NS

CPU_NS is the CPU time per instantiation the loop printed. Each sample
goes to the outermost phase frame on its stack (creating the store,
instantiating, dropping the store) and to the innermost labelled frame
within it.
"""
import sys, re, collections
# Buckets perf samples: phase = outermost of the known phase frames;
# part = innermost labeled frame inside the phase.
phases = [("Store::new", r"kiln::store::Store<T>::new"),
          ("instantiate", r"kiln::instance::instantiate|InstancePre<T>>::instantiate|InstancePre<T>::instantiate"),
          ("drop", r"drop_in_place<kiln::store::Store")]
parts = [
  ("madvise (memory reset)", r"reset_memory|dontneed|madvise"),
  ("mprotect/mmap", r"mprotect|__mmap|mmap64"),
  ("malloc/free", r"^(malloc|_int_malloc|_int_free|cfree|__libc_calloc|__GI___libc_free|__GI___libc_malloc|free|realloc|_int_realloc|__libc_realloc|calloc|malloc_consolidate|tcache)"),
  ("memset/memcpy", r"memset|memmove|memcpy"),
  ("memory slot", r"take_memory|LinearMemory::allocate|take_preferring|prepare_memory"),
  ("table slot", r"Table::allocate|take_table"),
  ("table reset", r"put_table|Table as core::ops::drop"),
  ("context slot", r"take_instance|put_instance|Instance as core::ops::drop"),
  ("StoreCode::insert", r"StoreCode::insert"),
  ("pool checks", r"check_module"),
  ("runtime instantiate (template copy, pointer writes, table fill)", r"StoreOpaque::instantiate"),
  ("StoreOpaque::new", r"StoreOpaque::new"),
  ("keep_pre", r"keep_pre"),
  ("resource counts", r"bump_resource_counts|limits::bump"),
  ("api instantiate", r"kiln::instance::instantiate"),
]
counts = collections.Counter(); phase_counts = collections.Counter(); total = 0
def flush(stack):
    global total
    if not stack: return
    total += 1
    syms = [re.sub(r"^\s*[0-9a-f]+\s+", "", l).strip() for l in stack]
    ph = None
    for name, pat in phases:
        if any(re.search(pat, s) for s in syms): ph = name; break
    if ph is None: ph = "other"
    phase_counts[ph] += 1
    part = "other"
    for s in syms:  # leaf first
        hit = None
        for name, pat in parts:
            if re.search(pat, s): hit = name; break
        if hit: part = hit; break
    counts[(ph, part)] += 1
stack = []
for line in sys.stdin:
    if line.strip() == "":
        flush(stack); stack = []
    else:
        stack.append(line)
flush(stack)
cpu_ns = float(sys.argv[1])
print(f"{total} samples; ns at {cpu_ns} ns CPU per iteration")
for ph, c in phase_counts.most_common():
    print(f"{ph:12} {100*c/total:5.1f}%  {cpu_ns*c/total:6.0f} ns")
    for (p2, part), c2 in sorted(counts.items(), key=lambda kv: -kv[1]):
        if p2 == ph:
            print(f"    {part:60} {100*c2/total:5.1f}%  {cpu_ns*c2/total:6.0f} ns")
