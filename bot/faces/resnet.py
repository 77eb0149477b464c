"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) run in numpy.

Why: the prebuilt dlib wheel (`dlib-bin`) is compiled without BLAS, so its descriptor costs ~80 ms a face on
one core; the same network as float32 matrix products through numpy's OpenBLAS takes ~10 ms. It reads the
model file face_recognition_models ships (nothing is downloaded), checks the file's layers against the
network dlib's example defines, and gives the same descriptors as `compute_face_descriptor` (largest
difference 1.4e-6 in Euclidean distance over 400 faces; tests/faces/test_resnet.py keeps checking it against
dlib on the shared photos). Detection, landmarks and the aligned 150×150 chip still come from dlib.

Usage::

    net = resnet.load()                      # parses the .dat (~50 ms)
    D = net.descriptors(chips)               # (N,150,150,3) uint8 RGB chips -> (N,128) float32

The network (dlib examples/dnn_face_recognition_ex.cpp)::

    loss_metric<fc_no_bias<128,avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,
        input_rgb_image_sized<150> >>>>>>>>>>>>

dlib serialization format (dlib/serialize.h):
  * integers: 1 control byte (low nibble = number of bytes, 0x80 = negative),
    then that many little-endian magnitude bytes;
  * float/double: int64 mantissa + int16 exponent, both as integers above
    (value = mantissa * 2**exponent; exponent 32000/32001/32002 = inf/-inf/nan);
  * bool: ASCII '0' / '1';  std::string: length (integer) + raw bytes;
  * tensor: int version(2), 4 x int64 (n,k,nr,nc), then n*k*nr*nc raw
    little-endian float32;  alias_tensor: int version(1) + 4 x int64 (no data).
Network nesting (dlib/dnn/core.h): add_loss_layer = version, loss details,
subnet; add_layer = version, subnet, details, 3 bools, tensors(x_grad,
cached_output, params_grad)  (the add_layer directly on the input layer has
version 3: version, input layer, details, 3 bools, x_grad, cached_output,
grad_final, sample_expansion_factor); add_tag_layer / add_skip_layer =
version(1), subnet.  So the file begins with all the version ints of the
nested layers from the output inwards, then the input layer, then the details
of every add_layer from the input outwards.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "DlibResNet",
    "default_model_path",
    "descriptor",
    "descriptors",
    "load",
    "parse_dat",
    "parse_dat_bytes",
]


# ---------------------------------------------------------------------------
# low level dlib deserialization
# ---------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes):
        self.b = data
        self.pos = 0

    def int(self) -> int:
        ctl = self.b[self.pos]
        size = ctl & 0x0F
        if size == 0 or size > 8:
            raise ValueError(f"bad integer control byte {ctl:#x} at {self.pos}")
        v = int.from_bytes(self.b[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -v if ctl & 0x80 else v

    def peek_int(self) -> int:
        p = self.pos
        v = self.int()
        self.pos = p
        return v

    def float(self) -> float:
        if (self.b[self.pos] & 0x70) != 0:
            raise ValueError("old ASCII float format not supported")
        m = self.int()
        e = self.int()
        if e == 32000:
            return float("inf")
        if e == 32001:
            return float("-inf")
        if e == 32002:
            return float("nan")
        return float(np.ldexp(np.float64(m), e))

    def bool(self) -> bool:
        c = self.b[self.pos:self.pos + 1]
        self.pos += 1
        if c == b"1":
            return True
        if c == b"0":
            return False
        raise ValueError(f"bad bool byte {c!r} at {self.pos - 1}")

    def string(self) -> str:
        n = self.int()
        s = self.b[self.pos:self.pos + n]
        self.pos += n
        return s.decode("latin-1")

    def peek_string(self, maxlen=64):
        """Return the string at the current position if it looks like one."""
        p = self.pos
        try:
            n = self.int()
            if not (0 < n <= maxlen):
                return None
            s = self.b[self.pos:self.pos + n]
            if not all(32 <= ch < 127 for ch in s):
                return None
            return s.decode("ascii")
        except (ValueError, IndexError):
            return None
        finally:
            self.pos = p

    def tensor(self) -> np.ndarray:
        ver = self.int()
        if ver != 2:
            raise ValueError(f"unexpected tensor version {ver} at {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        cnt = int(np.prod(shape))
        a = np.frombuffer(self.b, dtype="<f4", count=cnt, offset=self.pos)
        self.pos += 4 * cnt
        return a.astype(np.float32).reshape(shape)

    def alias_tensor(self):
        ver = self.int()
        if ver != 1:
            raise ValueError(f"unexpected alias_tensor version {ver}")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader) -> dict:
    """Read the serialized 'details' object of one add_layer (a computational layer)."""
    name = r.string()
    if name in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        num_filters = r.int()
        nr, nc = r.int(), r.int()
        sy, sx = r.int(), r.int()
        py, px = r.int(), r.int()
        fshape = r.alias_tensor()
        bshape = r.alias_tensor()
        [r.float() for _ in range(4)]  # lr / weight-decay multipliers
        use_bias = True
        if name in ("con_5", "con_6"):
            use_bias = r.bool()
        use_relu = False
        if name == "con_6":
            use_relu = r.bool()
        flat = params.ravel()
        nf = int(np.prod(fshape))
        W = flat[:nf].reshape(fshape)  # (num_filters, k, nr, nc)
        b = flat[nf:nf + int(np.prod(bshape))].copy() if use_bias else np.zeros(num_filters, np.float32)
        assert W.shape[0] == num_filters and W.shape[2:] == (nr, nc)
        return {"type": "con", "W": W, "b": b, "stride": (sy, sx), "pad": (py, px), "relu": use_relu}
    if name in ("affine_", "affine_2"):
        params = r.tensor()
        gshape = r.alias_tensor()
        bshape = r.alias_tensor()
        mode = r.int()  # 0 = CONV_MODE (per channel), 1 = FC_MODE
        disabled = r.bool() if name == "affine_2" else False
        flat = params.ravel()
        ng = int(np.prod(gshape))
        g = flat[:ng].reshape(gshape)
        bt = flat[ng:ng + int(np.prod(bshape))].reshape(bshape)
        if mode != 0:
            raise NotImplementedError("affine FC_MODE not used by this network")
        return {"type": "affine", "gamma": g.ravel().copy(), "beta": bt.ravel().copy(), "disabled": disabled}
    if name in ("relu_", "relu_2"):
        disabled = r.bool() if name == "relu_2" else False
        return {"type": "relu", "disabled": disabled}
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc = r.int(), r.int()
        sy, sx = r.int(), r.int()
        py, px = r.int(), r.int()
        return {"type": name[:-2], "size": (nr, nc), "stride": (sy, sx), "pad": (py, px)}
    if name == "add_prev_":
        return {"type": "add_prev"}
    if name in ("fc_2", "fc_3"):
        nout, nin = r.int(), r.int()
        params = r.tensor()
        wshape = r.alias_tensor()
        bshape = r.alias_tensor()
        bias_mode = r.int()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        [r.float() for _ in range(4)]
        use_bias = r.bool() if name == "fc_3" else True
        flat = params.ravel()
        nw = int(np.prod(wshape))
        W = flat[:nw].reshape(nin, nout)  # output = x @ W
        b = None
        if bias_mode == 0 and use_bias:
            b = flat[nw:nw + nout].copy()
        return {"type": "fc", "W": W.copy(), "b": b}
    raise NotImplementedError(f"layer type {name!r} not supported")


def parse_dat(path: str) -> dict:
    """Parse a dlib dnn .dat file of a loss_metric network built from
    con/affine/relu/add_prev/avg_pool/max_pool/fc/tag/skip layers.

    Returns dict(loss=..., input=..., layers=[...]) where layers go from the
    input to the output; tag/skip layers appear as dict(type='tag_or_skip')
    (their ids are not stored in the file; see _expected_structure)."""
    with open(path, "rb") as f:
        return parse_dat_bytes(f.read())


def parse_dat_bytes(data: bytes) -> dict:
    """`parse_dat` of a model file's bytes (a caller that checked the bytes' SHA-256 runs those same bytes)."""
    r = _Reader(data)
    ver = r.int()
    if ver != 1:
        raise ValueError("not an add_loss_layer (version != 1)")
    loss_name = r.string()
    loss = {"name": loss_name}
    if loss_name == "loss_metric_2":
        loss["margin"], loss["dist_thresh"] = r.float(), r.float()
    elif loss_name != "loss_metric_":
        raise NotImplementedError(loss_name)

    # version ints of nested layers, outermost first, until the input layer
    versions = []
    while True:
        versions.append(r.int())
        s = r.peek_string()
        if s is not None and s.startswith("input"):
            break
    inp_name = r.string()
    avg = [r.float() for _ in range(3)]
    inp = {"name": inp_name, "avg_rgb": np.array(avg, np.float32)}
    if inp_name == "input_rgb_image_sized":
        inp["nr"], inp["nc"] = r.int(), r.int()
    elif inp_name != "input_rgb_image":
        raise NotImplementedError(inp_name)

    layers = []
    # innermost: add_layer directly over the input layer
    v = versions[-1]
    if v not in (2, 3):
        raise ValueError(f"unexpected innermost add_layer version {v}")
    layers.append(_read_details(r))
    r.bool(); r.bool(); r.bool()
    r.tensor(); r.tensor(); r.tensor()  # x_grad, cached_output, grad_final
    if v >= 3:
        r.int()  # sample_expansion_factor
    for v in reversed(versions[:-1]):
        if v == 1:
            layers.append({"type": "tag_or_skip"})
        elif v == 2:
            layers.append(_read_details(r))
            r.bool(); r.bool(); r.bool()
            r.tensor(); r.tensor(); r.tensor()  # x_grad, cached_output, params_grad
        else:
            raise ValueError(f"unexpected add_layer version {v}")
    if r.pos != len(data):
        raise ValueError(f"trailing bytes: parsed {r.pos} of {len(data)}")
    return {"loss": loss, "input": inp, "layers": layers}


# ---------------------------------------------------------------------------
# the network structure (from dnn_face_recognition_ex.cpp), input -> output
# ---------------------------------------------------------------------------
def _expected_structure():
    seq = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]

    def block(n, stride):  # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUB>>>>>
        return [("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]

    def ares(n):  # relu<add_prev1<block<N,1,tag1<SUB>>>>
        return [("tag", 1)] + block(n, 1) + [("add_prev", 1), ("relu",)]

    def ares_down(n):  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUB>>>>>>>>
        return ([("tag", 1)] + block(n, 2) +
                [("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)])

    seq += ares(32) * 3                                  # alevel4
    seq += ares_down(64) + ares(64) * 3                  # alevel3
    seq += ares_down(128) + ares(128) * 2                # alevel2
    seq += ares_down(256) + ares(256) * 2                # alevel1
    seq += ares_down(256)                                # alevel0
    seq += [("avg_pool_everything",), ("fc", 128)]
    return seq


def _build_ops(parsed: dict, fold_affine: bool = True):
    """Match parsed layers with the expected structure and build the op list."""
    exp = _expected_structure()
    L = parsed["layers"]
    if len(L) != len(exp):
        raise ValueError(f"layer count mismatch: file {len(L)} vs expected {len(exp)}")
    ops = []
    for i, (e, l) in enumerate(zip(exp, L)):
        t = e[0]
        if t in ("tag", "skip"):
            if l["type"] != "tag_or_skip":
                raise ValueError(f"layer {i}: expected {t}, got {l['type']}")
            ops.append([t, e[1]])
            continue
        if t == "avg_pool_everything":
            if l["type"] != "avg_pool" or l["size"] != (0, 0) or l["pad"] != (0, 0):
                raise ValueError(f"layer {i}: expected avg_pool_everything, got {l}")
            ops.append(["gap"])
            continue
        if l["type"] != t:
            raise ValueError(f"layer {i}: expected {t}, got {l['type']}")
        if t == "con":
            W = l["W"]
            n, k, s = e[1], e[2], e[3]
            if W.shape[0] != n or W.shape[2:] != (k, k) or l["stride"] != (s, s):
                raise ValueError(f"layer {i}: conv shape mismatch {W.shape} {l['stride']}")
            if l["pad"] != ((k // 2, k // 2) if s == 1 else (0, 0)):
                raise ValueError(f"layer {i}: unexpected padding {l['pad']}")
            if l["relu"]:
                raise NotImplementedError("fused relu in con_")
            # (Cout, Cin, kh, kw) -> (kh*kw*Cin, Cout), matching NHWC patches
            Wm = np.ascontiguousarray(W.transpose(2, 3, 1, 0).reshape(-1, W.shape[0]))
            ops.append(["con", Wm, l["b"].astype(np.float32), k, s, l["pad"][0]])
        elif t == "affine":
            if l.get("disabled"):
                continue
            if fold_affine and ops and ops[-1][0] == "con":
                g, bt = l["gamma"], l["beta"]
                ops[-1][1] = np.ascontiguousarray(ops[-1][1] * g[None, :])
                ops[-1][2] = (ops[-1][2] * g + bt).astype(np.float32)
            else:
                ops.append(["affine", l["gamma"], l["beta"]])
        elif t == "relu":
            if l.get("disabled"):
                continue
            if ops and ops[-1][0] in ("con", "affine", "add_prev") and not _has_relu(ops[-1]):
                ops[-1].append("relu")  # fuse into previous op
            else:
                ops.append(["relu"])
        elif t == "max_pool":
            if l["size"] != (e[1], e[1]) or l["stride"] != (e[2], e[2]) or l["pad"] != (0, 0):
                raise ValueError(f"layer {i}: max_pool mismatch {l}")
            ops.append(["max_pool", e[1], e[2]])
        elif t == "avg_pool":
            if l["size"] != (e[1], e[1]) or l["stride"] != (e[2], e[2]) or l["pad"] != (0, 0):
                raise ValueError(f"layer {i}: avg_pool mismatch {l}")
            ops.append(["avg_pool", e[1], e[2]])
        elif t == "add_prev":
            ops.append(["add_prev", e[1]])
        elif t == "fc":
            if l["W"].shape[1] != e[1]:
                raise ValueError("fc size mismatch")
            ops.append(["fc", l["W"], l["b"]])
    return ops


def _has_relu(op):
    return isinstance(op[-1], str) and op[-1] == "relu"


# ---------------------------------------------------------------------------
# numpy forward pass (NHWC, float32)
# ---------------------------------------------------------------------------
def _conv(x, Wm, b, k, s, p, relu):
    N, H, W, C = x.shape
    if p:
        xp = np.zeros((N, H + 2 * p, W + 2 * p, C), np.float32)
        xp[:, p:p + H, p:p + W, :] = x
    else:
        xp = x
    Hp, Wp = xp.shape[1], xp.shape[2]
    Ho = 1 + (Hp - k) // s
    Wo = 1 + (Wp - k) // s
    Cout = Wm.shape[1]
    if Ho == 1 and Wo == 1 and Hp == k and Wp == k and p and H == 1 and W == 1:
        # 1x1 input with 'same' padding: only the centre tap sees data
        c = (k // 2) * k + (k // 2)
        out = x.reshape(N, C) @ Wm[c * C:(c + 1) * C]
        out += b
        if relu:
            np.maximum(out, 0, out=out)
        return out.reshape(N, 1, 1, Cout)
    sN, sH, sW, sC = xp.strides
    patches = np.lib.stride_tricks.as_strided(
        xp, shape=(N, Ho, Wo, k, k, C), strides=(sN, sH * s, sW * s, sH, sW, sC),
        writeable=False)
    out = np.empty((N, Ho * Wo, Cout), np.float32)
    # keep the im2col buffer cache-sized: chunk over the batch for large maps
    step = max(1, _MAX_ROWS // (Ho * Wo))
    for i in range(0, N, step):
        j = min(N, i + step)
        cols = patches[i:j].reshape((j - i) * Ho * Wo, k * k * C)  # copies (im2col)
        o = out[i:j].reshape((j - i) * Ho * Wo, Cout)
        np.matmul(cols, Wm, out=o)
        o += b
        if relu:
            np.maximum(o, 0, out=o)
    return out.reshape(N, Ho, Wo, Cout)


_MAX_ROWS = 2048


def _add_zero_padded(a, b):
    """dlib tt::add(dest, src1, src2) with dest = max dims, missing = 0."""
    if a.shape == b.shape:
        return a + b
    shp = tuple(max(i, j) for i, j in zip(a.shape, b.shape))
    out = np.zeros(shp, np.float32)
    out[:a.shape[0], :a.shape[1], :a.shape[2], :a.shape[3]] += a
    out[:b.shape[0], :b.shape[1], :b.shape[2], :b.shape[3]] += b
    return out


def _pool(x: np.ndarray, k: int, s: int, combine) -> np.ndarray:
    """k×k windows at stride s, no padding (dlib's placement), folded with `combine` (np.maximum or np.add)."""
    _, H, W, _ = x.shape
    Ho, Wo = 1 + (H - k) // s, 1 + (W - k) // s
    y = None
    for dy in range(k):
        for dx in range(k):
            v = x[:, dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s, :]
            y = v.copy() if y is None else combine(y, v, out=y)
    return y


def _forward(ops, avg_rgb, chips):
    x = chips.astype(np.float32)
    x -= avg_rgb
    x *= np.float32(1.0 / 256.0)  # exact: same as dlib's /256.0
    tags = {}
    for op in ops:
        t = op[0]
        relu = _has_relu(op)
        if t == "con":
            x = _conv(x, op[1], op[2], op[3], op[4], op[5], relu)
            continue
        if t == "affine":
            x = x * op[1] + op[2]
        elif t == "max_pool":
            x = _pool(x, op[1], op[2], np.maximum)
        elif t == "avg_pool":
            x = _pool(x, op[1], op[2], np.add)
            x *= np.float32(1.0 / (op[1] * op[1]))
        elif t == "tag":
            tags[op[1]] = x
            continue
        elif t == "skip":
            x = tags[op[1]]
            continue
        elif t == "add_prev":
            x = _add_zero_padded(x, tags[op[1]])
        elif t == "relu":
            x = np.maximum(x, 0)
            continue
        elif t == "gap":
            x = x.mean(axis=(1, 2), dtype=np.float32)
            continue
        elif t == "fc":
            x = x.reshape(x.shape[0], -1) @ op[1]
            if op[2] is not None:
                x = x + op[2]
            continue
        if relu:
            np.maximum(x, 0, out=x)
    return x


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def default_model_path() -> str:
    import face_recognition_models as frm
    return frm.face_recognition_model_location()


class DlibResNet:
    def __init__(self, ops, avg_rgb, chip_size=150):
        self.ops = ops
        self.avg_rgb = np.asarray(avg_rgb, np.float32)
        self.chip_size = chip_size

    # -- construction ------------------------------------------------------
    @classmethod
    def from_dat(cls, path=None, fold_affine=True):
        return cls.from_parsed(parse_dat(path or default_model_path()), fold_affine)

    @classmethod
    def from_bytes(cls, data: bytes, fold_affine: bool = True) -> DlibResNet:
        """The network of a model file's bytes (see parse_dat_bytes)."""
        return cls.from_parsed(parse_dat_bytes(data), fold_affine)

    @classmethod
    def from_parsed(cls, parsed: dict, fold_affine: bool = True) -> DlibResNet:
        return cls(_build_ops(parsed, fold_affine), parsed["input"]["avg_rgb"],
                   parsed["input"].get("nr", 150))

    # -- inference ---------------------------------------------------------
    def descriptors(self, chips) -> np.ndarray:
        """chips: (N,150,150,3) uint8 RGB array or list of such -> (N,128) float32."""
        if isinstance(chips, (list, tuple)):
            chips = np.stack([np.asarray(c) for c in chips])
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ValueError(f"chips must be {self.chip_size}x{self.chip_size}x3, got {chips.shape}")
        return _forward(self.ops, self.avg_rgb, chips)

    def descriptor(self, chip) -> np.ndarray:
        return self.descriptors(np.asarray(chip)[None])[0]


def load(path: str | None = None, fold_affine: bool = True) -> DlibResNet:
    """Parse the model file (default: face_recognition_models' copy) into a network ready to run."""
    return DlibResNet.from_dat(path, fold_affine=fold_affine)


_default = None


def _get_default():
    global _default
    if _default is None:
        _default = load()
    return _default


def descriptor(chip: np.ndarray) -> np.ndarray:
    """150x150x3 uint8 RGB aligned chip -> (128,) float32 descriptor."""
    return _get_default().descriptor(chip)


def descriptors(chips) -> np.ndarray:
    """Batched version: (N,150,150,3) uint8 -> (N,128) float32."""
    return _get_default().descriptors(chips)
