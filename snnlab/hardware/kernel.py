"""The event-driven, cycle-level loop of the accelerator (one function, compiled with Numba).

:func:`simulate_kernel` is written in plain Python over NumPy arrays; :data:`simulate_kernel_jit` is
the same function compiled by Numba. ``simulate_kernel`` run uncompiled is the pure-Python
reference loop of :func:`snnlab.hardware.reference_simulate` (tests check that both give identical
results; torch is the independent reference for what is computed, hand counts for how much).
The cost model it implements is described in :mod:`snnlab.hardware.simulator`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["COUNTERS", "IMETA", "simulate_kernel", "simulate_kernel_jit"]

COUNTERS = ("accumulate", "add", "shift", "compare", "mux", "register", "multiply", "dram", "sram",
            "scratchpad", "cycles", "stall_cycles", "busy_unit_cycles", "input_events", "synaptic_ops",
            "spikes", "neuron_updates", "input_wait_cycles", "streamed_steps")
"""Per sample and layer, in this order (see :mod:`snnlab.hardware.simulator`). ``streamed_steps``:
timesteps at which the layer streamed its weights from SRAM rather than loading them into the units."""
(ACC, ADD, SHIFT, CMP, MUX, REG, MUL, DRAM, SRAM, SPAD, CYC, STALL, BUSY, EVENTS, SYNOPS, SPIKES,
 UPDATES, INWAIT, STREAMED) = range(len(COUNTERS))

IMETA = ("kind", "cin", "hin", "win", "cout", "hout", "wout", "k", "stride", "pad", "pool", "w_off", "b_off",
         "n_off", "n", "m", "tiles", "resident", "is_output", "shifts", "mul_decay", "spk_off", "units",
         "load_sram", "load_spad", "din", "on_at", "lif")
"""Integer description of a layer (one row per layer), in this order."""
(KIND, CIN, HIN, WIN, COUT, HOUT, WOUT, KS, STRIDE, PAD, POOL, WOFF, BOFF, NOFF, NN, MM, TILES, RES, ISOUT,
 SHIFTS, MULDECAY, SPKOFF, UNITS, LOADSRAM, LOADSPAD, DIN, ONAT, LIF) = range(len(IMETA))


def simulate_kernel(x, x_static, imeta, fmeta, weights, biases, T, levels, adaptive, exp_table, exp_range,
                    bus, in_cap, out_cap, upd_cycles, record, spikes, outputs, steps, preds, counters, max_abs):
    """Run every sample of ``x`` ([B, T_in, D0] float64) through the layers; fill the outputs in place."""
    B = x.shape[0]
    L = imeta.shape[0]
    total_n = 0
    max_d = x.shape[2]
    max_fan = 1
    max_slots = 1
    max_tiles = 1
    for l in range(L):
        total_n += imeta[l, NN]
        max_d = max(max_d, imeta[l, NN])
        if imeta[l, KIND] == 0:
            max_fan = max(max_fan, imeta[l, COUT] * imeta[l, KS] * imeta[l, KS])
        else:
            max_fan = max(max_fan, imeta[l, NN])
        max_slots = max(max_slots, imeta[l, UNITS] * imeta[l, TILES])
        max_tiles = max(max_tiles, imeta[l, TILES])
    state = np.zeros(total_n)
    fired = np.zeros(max_d, np.uint8)
    ev_idx = np.zeros(max_d, np.int64)
    ev_val = np.zeros(max_d)
    nx_idx = np.zeros(max_d, np.int64)
    tgt_n = np.zeros(max_fan, np.int64)
    tgt_w = np.zeros(max_fan, np.int64)
    slot_cnt = np.zeros(max_slots, np.int64)
    slot_spk = np.zeros(max_slots, np.int64)
    # input FIFOs: per unit slot the finish time of its work, its event count and the start times of
    # its last in_cap events; per tile the cycle its latest event entered the buffers
    # [2, ...]: the same bookkeeping for weights kept in the units (0) and streamed from SRAM (1)
    finish = np.zeros((2, max_slots), np.int64)
    queued = np.zeros((2, max_slots), np.int64)
    started = np.zeros((2, max_slots, in_cap), np.int64)
    tile_arrival = np.zeros((2, max_tiles), np.int64)
    tile_max = np.zeros((2, max_tiles), np.int64)
    bus_free = np.zeros(max_tiles, np.int64)     # streamed: when the bus has delivered a tile's weights
    tile_nt = np.zeros(max_tiles, np.int64)      # streamed: weight words one event needs in a tile
    slot_list = np.zeros(max_slots, np.int64)
    ev_cycles = np.zeros(2, np.int64)
    ev_reads = np.zeros(2, np.int64)
    ev_wait = np.zeros(2, np.int64)
    tile_stall = np.zeros(max_tiles, np.int64)
    C = imeta[L - 1, NN]
    cum = np.zeros(C)
    sig = np.zeros(C)
    d0 = x.shape[2]
    n_table = exp_table.shape[0]
    flush_cycles = (out_cap + bus - 1) // bus
    for b in range(B):
        for i in range(total_n):
            state[i] = 0.0
        for i in range(C):
            cum[i] = 0.0
        done = False
        for t in range(T):
            if done:
                break
            # ---- input events of the first layer (direct encoding: the pixels; or event frames)
            frame = 0 if x_static else t
            n_ev = 0
            for i in range(d0):
                v = x[b, frame, i]
                if v != 0.0:
                    ev_idx[n_ev] = i
                    ev_val[n_ev] = v
                    n_ev += 1
            if not x_static:
                counters[b, 0, DRAM] += n_ev          # address events read from DRAM
                counters[b, 0, SRAM] += n_ev
            elif t == 0:
                counters[b, 0, DRAM] += d0            # the image, once
                counters[b, 0, SRAM] += d0
            for l in range(L):
                kind = imeta[l, KIND]
                N = imeta[l, NN]
                off = imeta[l, NOFF]
                m = imeta[l, MM]
                units = imeta[l, UNITS]
                tiles = imeta[l, TILES]
                on_at = imeta[l, ONAT] == 1
                resident = imeta[l, RES] == 1
                decay = fmeta[l, 0]
                vth = fmeta[l, 1]
                # (the load of weights and saved potentials is counted after the event phase, once the
                # cheaper of keeping the weights in the units and streaming them is known)
                # ---- neuron update part 1: decay (shift-and-add or multiply) and bias
                per_ch = N // imeta[l, COUT] if kind == 0 else 1
                for n in range(N):
                    state[off + n] = state[off + n] * decay + biases[imeta[l, BOFF] + n // per_ch]
                if decay != 0.0:
                    if imeta[l, MULDECAY] == 1:
                        counters[b, l, MUL] += N
                    else:
                        counters[b, l, SHIFT] += N * imeta[l, SHIFTS]
                        counters[b, l, ADD] += N * max(imeta[l, SHIFTS] - 1, 0)
                counters[b, l, ADD] += N                 # + bias
                counters[b, l, REG] += 3 * N
                counters[b, l, SPAD] += 2 * N            # potential read and write
                counters[b, l, UPDATES] += N
                counters[b, l, BUSY] += N * upd_cycles
                if on_at:
                    counters[b, l, MUX] += N             # no reset mux in the AT unit
                    counters[b, l, CYC] += N * upd_cycles
                else:
                    counters[b, l, CMP] += N
                    counters[b, l, MUX] += 2 * N
                    counters[b, l, CYC] += tiles * m * upd_cycles
                # ---- events: every input spike is broadcast to the tiles it reaches, one per cycle, into
                # the input buffers of the units it concerns; each unit works through its own buffer,
                # one accumulate per cycle per neuron of its own the event reaches (see the docstring)
                counters[b, l, EVENTS] += n_ev
                # modes simulated: 0 = weights loaded into the units (when they fit), 1 = streamed from
                # SRAM, one bus word per accumulate. A PE layer whose weights fit takes the cheaper of the
                # two at every step (a unit with memory can still stream: more memory never costs cycles);
                # the AT unit keeps fitting weights for the whole sample.
                mode_lo = 0 if resident else 1
                mode_hi = 0 if (resident and on_at) else 1
                for md in range(mode_lo, mode_hi + 1):
                    for s in range(units * tiles):
                        finish[md, s] = 0
                        queued[md, s] = 0
                    for tl in range(tiles):
                        tile_arrival[md, tl] = -1
                        tile_max[md, tl] = 0
                    ev_reads[md] = 0
                    ev_wait[md] = 0
                for tl in range(tiles):
                    bus_free[tl] = 0
                    tile_nt[tl] = 0
                syn = 0
                for e in range(n_ev):
                    idx = ev_idx[e]
                    v = ev_val[e]
                    nt = 0
                    if kind == 1:
                        din = imeta[l, DIN]
                        for o in range(N):
                            tgt_n[o] = o
                            tgt_w[o] = o * din + idx
                        nt = N
                    else:
                        hin = imeta[l, HIN]
                        win = imeta[l, WIN]
                        cin = imeta[l, CIN]
                        cout = imeta[l, COUT]
                        ho = imeta[l, HOUT]
                        wo = imeta[l, WOUT]
                        ks = imeta[l, KS]
                        st = imeta[l, STRIDE]
                        pd = imeta[l, PAD]
                        ci = idx // (hin * win)
                        r = idx % (hin * win)
                        y = r // win
                        xx = r % win
                        for ky in range(ks):
                            oyn = y + pd - ky
                            if oyn < 0 or oyn % st != 0:
                                continue
                            oy = oyn // st
                            if oy >= ho:
                                continue
                            for kx in range(ks):
                                oxn = xx + pd - kx
                                if oxn < 0 or oxn % st != 0:
                                    continue
                                ox = oxn // st
                                if ox >= wo:
                                    continue
                                for co in range(cout):
                                    tgt_n[nt] = (co * ho + oy) * wo + ox
                                    tgt_w[nt] = ((co * cin + ci) * ks + ky) * ks + kx
                                    nt += 1
                    woff = imeta[l, WOFF]
                    n_slots = 0
                    for j in range(nt):
                        n = tgt_n[j]
                        state[off + n] += weights[woff + tgt_w[j]] * v
                        sl = n // m
                        if slot_cnt[sl] == 0:
                            slot_list[n_slots] = sl
                            n_slots += 1
                        slot_cnt[sl] += 1
                    if mode_hi == 1:
                        for i in range(n_slots):
                            tile_nt[slot_list[i] // units] += slot_cnt[slot_list[i]]
                    for md in range(mode_lo, mode_hi + 1):
                        # the event enters a tile one cycle after the previous one, or later if the buffer
                        # of a unit it concerns is full (that unit has not yet started its in_cap-th last
                        # event) or, when streaming, until the bus has delivered the previous event's weights
                        for i in range(n_slots):
                            sl = slot_list[i]
                            tl = sl // units
                            # tile_max holds the candidate arrival + 1 (so 0 means "not reached")
                            if tile_max[md, tl] == 0:
                                tile_max[md, tl] = tile_arrival[md, tl] + 2
                                if md == 1 and bus_free[tl] + 1 > tile_max[md, tl]:
                                    tile_max[md, tl] = bus_free[tl] + 1
                            if queued[md, sl] >= in_cap:
                                # the entry frees when that event starts; the new one enters a cycle later
                                free_at = started[md, sl, queued[md, sl] % in_cap] + 2
                                if free_at > tile_max[md, tl]:
                                    tile_max[md, tl] = free_at
                        for tl in range(tiles):
                            if tile_max[md, tl] > 0:
                                arrival = tile_max[md, tl] - 1
                                ev_wait[md] += arrival - (tile_arrival[md, tl] + 1)
                                tile_arrival[md, tl] = arrival
                                ev_reads[md] += 1                # the event read into the tile's input buffers
                                if md == 1:                      # its weights follow over the bus
                                    bus_free[tl] = arrival + (tile_nt[tl] + bus - 1) // bus
                                tile_max[md, tl] = 0
                        for i in range(n_slots):
                            sl = slot_list[i]
                            ready = tile_arrival[md, sl // units] if md == 0 else bus_free[sl // units]
                            start_s = max(finish[md, sl], ready)
                            finish[md, sl] = start_s + slot_cnt[sl]
                            started[md, sl, queued[md, sl] % in_cap] = start_s
                            queued[md, sl] += 1
                    for i in range(n_slots):
                        slot_cnt[slot_list[i]] = 0
                    if mode_hi == 1:
                        for i in range(n_slots):
                            tile_nt[slot_list[i] // units] = 0
                    syn += nt
                    counters[b, l, ACC] += nt
                    counters[b, l, SYNOPS] += nt
                    counters[b, l, BUSY] += nt
                    if v != 1.0:
                        counters[b, l, MUL] += nt                # an analog input: multiply-accumulate
                    counters[b, l, SPAD] += 2 * nt
                for md in range(mode_lo, mode_hi + 1):
                    ev_cycles[md] = 0
                    for tl in range(tiles):
                        busy_until = tile_arrival[md, tl] + 1
                        if md == 1 and bus_free[tl] > busy_until:
                            busy_until = bus_free[tl]
                        for sl in range(tl * units, (tl + 1) * units):
                            if finish[md, sl] > busy_until:
                                busy_until = finish[md, sl]
                        ev_cycles[md] += busy_until
                # ---- load: weights (kept in the units) and, after the first step, the saved potentials
                potentials = N if (t > 0 and not on_at) else 0
                load_words = (imeta[l, LOADSRAM] if (not on_at or t == 0) else 0) + potentials
                cost_kept = (load_words + bus - 1) // bus + ev_cycles[0]
                cost_streamed = (potentials + bus - 1) // bus + ev_cycles[1]
                use = mode_lo if mode_lo == mode_hi else (1 if cost_streamed < cost_kept else 0)
                if use == 0:
                    counters[b, l, SRAM] += load_words + ev_reads[0]
                    counters[b, l, SPAD] += (imeta[l, LOADSPAD] if (not on_at or t == 0) else 0) + potentials
                    counters[b, l, SPAD] += syn                  # weights read from the unit's memory
                    counters[b, l, CYC] += cost_kept
                else:
                    counters[b, l, SRAM] += potentials + ev_reads[1] + syn   # weights streamed from SRAM
                    counters[b, l, SPAD] += potentials
                    counters[b, l, CYC] += cost_streamed
                    counters[b, l, STREAMED] += 1
                counters[b, l, INWAIT] += ev_wait[use]
                # ---- neuron update part 2: fire, reset, spikes out (LIF) or output (integrator)
                if imeta[l, LIF] == 1:
                    nspk = 0
                    for n in range(N):
                        u = state[off + n]
                        if abs(u) > max_abs[l]:
                            max_abs[l] = abs(u)
                        if u >= vth:
                            state[off + n] = 0.0
                            fired[n] = 1
                            slot_spk[n // m] += 1
                            nspk += 1
                            if record:
                                spikes[b, t, imeta[l, SPKOFF] + n] = 1
                        else:
                            fired[n] = 0
                    counters[b, l, SPIKES] += nspk
                    for s in range(units * tiles):
                        if slot_spk[s] > out_cap:    # output buffer full: the PE waits for a flush
                            extra = ((slot_spk[s] - 1) // out_cap) * flush_cycles
                            if extra > tile_stall[s // units]:
                                tile_stall[s // units] = extra
                        slot_spk[s] = 0
                    for tl in range(tiles):
                        counters[b, l, STALL] += tile_stall[tl]
                        counters[b, l, CYC] += tile_stall[tl]
                        tile_stall[tl] = 0
                    # potentials saved to SRAM (the array is needed by the next layer)
                    counters[b, l, SRAM] += N
                    counters[b, l, SPAD] += N
                    counters[b, l, CYC] += (N + bus - 1) // bus
                    # spikes of this layer become the next layer's events (max-pooled: an OR)
                    n_next = 0
                    k = imeta[l, POOL]
                    if k > 0:
                        cc = imeta[l, COUT]
                        hh = imeta[l, HOUT]
                        ww = imeta[l, WOUT]
                        hp = hh // k
                        wp = ww // k
                        for ch in range(cc):
                            for py in range(hp):
                                for px in range(wp):
                                    hit = 0
                                    for dy in range(k):
                                        for dx in range(k):
                                            if fired[(ch * hh + py * k + dy) * ww + px * k + dx] == 1:
                                                hit = 1
                                    if hit == 1:
                                        nx_idx[n_next] = (ch * hp + py) * wp + px
                                        n_next += 1
                        counters[b, l, CMP] += cc * hp * wp * (k * k - 1)
                    else:
                        for n in range(N):
                            if fired[n] == 1:
                                nx_idx[n_next] = n
                                n_next += 1
                    counters[b, l, SRAM] += n_next               # output buffers drained into SRAM
                    for e in range(n_next):
                        ev_idx[e] = nx_idx[e]
                        ev_val[e] = 1.0
                    n_ev = n_next
                else:
                    mx = -np.inf
                    for n in range(N):
                        u = state[off + n]
                        outputs[t, b, n] = u
                        if abs(u) > max_abs[l]:
                            max_abs[l] = abs(u)
                        if u > mx:
                            mx = u
                    if not on_at:
                        # conventional readout: sum the outputs, argmax at T
                        for n in range(N):
                            cum[n] += state[off + n]
                        counters[b, l, ADD] += N
                        counters[b, l, SPAD] += N
                        if t == T - 1:
                            best = 0
                            for n in range(1, N):
                                if cum[n] > cum[best]:
                                    best = n
                            preds[b] = best
                            steps[b] = T
                            counters[b, l, CMP] += N - 1
                            counters[b, l, DRAM] += 1
                        continue
                    # ---- AT unit: sigma_i = exp(f_i - max f) from the table (eq. 17), readout y_t (eq. 10)
                    total = 0.0
                    smax = 0.0
                    for n in range(N):
                        z = state[off + n] - mx
                        if n_table == 0:
                            e_val = math.exp(z)
                        else:
                            pos = (z + exp_range) * (n_table - 1) / exp_range
                            if pos <= 0.0:
                                e_val = 0.0
                            else:
                                i0 = min(int(pos), n_table - 2)
                                frac = pos - i0
                                e_val = exp_table[i0] + (exp_table[i0 + 1] - exp_table[i0]) * frac
                        sig[n] = e_val
                        total += e_val
                        if e_val > smax:
                            smax = e_val
                    for n in range(N):
                        cum[n] += sig[n] / total
                    counters[b, l, CMP] += N - 1                 # max f
                    counters[b, l, ADD] += N + 2 * N + (N - 1) + N   # f - max, interpolation, sum, y_t
                    counters[b, l, MUL] += N + N                  # interpolation, o_i = sigma_i * (1/sum)
                    counters[b, l, SPAD] += 2 * N + 1 + 2 * N     # table reads, reciprocal, y_t read/write
                    counters[b, l, CYC] += 2 * N + 1
                    stop = t == T - 1
                    if adaptive and t < T - 1:
                        # eq. 18: max_i sigma_i > CL_t * sum_j sigma_j  (CL_t = CL_{t-1} * tau_CL, eq. 15)
                        counters[b, l, MUL] += 1 if t == 0 else 2
                        counters[b, l, CMP] += 1
                        counters[b, l, CYC] += 3
                        if smax > levels[t] * total:
                            stop = True
                    if stop:
                        best = 0
                        for n in range(1, N):
                            if cum[n] / (t + 1) > cum[best] / (t + 1):
                                best = n
                        preds[b] = best
                        steps[b] = t + 1
                        counters[b, l, CMP] += N - 1
                        counters[b, l, DRAM] += 1
                        done = True


simulate_kernel_jit = njit(cache=True, nogil=True)(simulate_kernel)
