// Fused CPU scans for the LIF/RLIF, AdLIF/RadLIF and LI kernels.
//
// The equations are those of spikekws/neurons/functional/{lif,adlif,li}.py; the plain torch
// scans there define correctness. Each forward and each backward is one pass over time:
// elementwise loops over [M, H] (rows = batch, columns = neurons, contiguous so that they
// vectorise) and, for recurrent layers, one product with V per step (a sum of the rows
// picked by the spikes while they are sparse, else a GEMM) plus one weight-gradient pass.
//
// Layout: x, spikes and traces are [T, M, H] contiguous; per-neuron parameters are [H];
// states are [M, H]; the recurrent weight V is [H, H] and enters as I_t = x_t + s_{t-1} V^T.
//
// The forward arithmetic repeats the reference operation by operation (and the module is
// compiled with -ffp-contract=off), so without recurrence spikes and states match it bit for
// bit; with recurrence the product s V^T may sum in another order (rounding-level
// differences). What the backward keeps per step is the membrane trace v (and w for AdLIF)
// plus the input current; spikes are recomputed as (v - theta >= 0).
//
// Ops are registered under torch.ops.spikekws_scan.
#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

// Hand-vectorised x86 kernels (explicit AVX-512/AVX2 functions picked at run time) are
// built with GCC on x86-64; elsewhere the portable code runs.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SPIKEKWS_X86_ISA 1
#include <immintrin.h>
#endif

namespace {

using at::Tensor;

// Surrogate ids, shared with backends/cpp.py.
constexpr int64_t kBoxcar = 0;
constexpr int64_t kFastSigmoid = 1;
constexpr int64_t kSigmoid = 2;
constexpr int64_t kATan = 3;
constexpr int64_t kTriangle = 4;

// exp for float in a form the compiler vectorises (std::exp is a library call): range
// reduction by ln 2 and a degree-6 polynomial, relative error below 1e-7 on [-87, 88].
inline float exp_poly(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float g = (x - r * 0.693359375f) - r * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * g + 1.3981999507e-3f;
  p = p * g + 8.3334519073e-3f;
  p = p * g + 4.1665795894e-2f;
  p = p * g + 1.6666665459e-1f;
  p = p * g + 5.0000001201e-1f;
  const float y = (p * (g * g) + g) + 1.0f;
  const int32_t bits = (static_cast<int32_t>(r) + 127) << 23;  // 2^r
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline double exp_poly(double x) { return std::exp(x); }

// Pseudo-derivative g(u) of H(u), u = v - theta (see neurons/surrogate.py).
template <int64_t S, typename T>
inline T surrogate_grad(T u, T p1, T p2) {
  if constexpr (S == kBoxcar) {  // p1 = width / 2, p2 = scale
    return std::abs(u) <= p1 ? p2 : T(0);
  } else if constexpr (S == kFastSigmoid) {  // p1 = slope
    const T d = T(1) + p1 * std::abs(u);
    return T(1) / (d * d);
  } else if constexpr (S == kSigmoid) {  // p1 = slope; k s(1 - s) = k e / (1 + e)^2, e = exp(-k|u|)
    const T e = exp_poly(-p1 * std::abs(u));
    const T d = T(1) + e;
    return p1 * e / (d * d);
  } else if constexpr (S == kATan) {  // p1 = alpha / 2, p2 = pi / 2 * alpha
    const T z = p2 * u;
    return p1 / (T(1) + z * z);
  } else {  // triangle, p1 = width
    const T r = T(1) - std::abs(u) / p1;
    return r > T(0) ? r / p1 : T(0);
  }
}

template <typename F>
void with_surrogate(int64_t sid, const F& f) {
  switch (sid) {
    case kBoxcar: f(std::integral_constant<int64_t, kBoxcar>{}); break;
    case kFastSigmoid: f(std::integral_constant<int64_t, kFastSigmoid>{}); break;
    case kSigmoid: f(std::integral_constant<int64_t, kSigmoid>{}); break;
    case kATan: f(std::integral_constant<int64_t, kATan>{}); break;
    case kTriangle: f(std::integral_constant<int64_t, kTriangle>{}); break;
    default: TORCH_CHECK(false, "spikekws_scan: unknown surrogate id ", sid);
  }
}

// Rows per task: enough elements per task that threading pays off.
inline int64_t row_grain(int64_t elements_per_row, int64_t target = 16384) {
  return std::max<int64_t>(1, target / std::max<int64_t>(1, elements_per_row));
}

void check_states(const Tensor& x, int64_t M, int64_t H, const std::vector<const Tensor*>& states,
                  const std::vector<const Tensor*>& params, const c10::optional<Tensor>& weight);

void check_inputs(const Tensor& x, const std::vector<const Tensor*>& states,
                  const std::vector<const Tensor*>& params, const c10::optional<Tensor>& weight) {
  TORCH_CHECK(x.dim() == 3, "spikekws_scan: x must be [T, M, H], got ", x.sizes());
  TORCH_CHECK(x.device().is_cpu(), "spikekws_scan: CPU tensors only");
  TORCH_CHECK(x.is_contiguous(), "spikekws_scan: x must be contiguous");
  check_states(x, x.size(1), x.size(2), states, params, weight);
}

// States [M, H], per-neuron parameters [H] and the recurrent weight [H, H], all of x's dtype.
void check_states(const Tensor& x, int64_t M, int64_t H, const std::vector<const Tensor*>& states,
                  const std::vector<const Tensor*>& params, const c10::optional<Tensor>& weight) {
  for (const Tensor* s : states) {
    TORCH_CHECK(s->dim() == 2 && s->size(0) == M && s->size(1) == H && s->is_contiguous() &&
                    s->scalar_type() == x.scalar_type(),
                "spikekws_scan: states must be contiguous [M, H] of x's dtype");
  }
  for (const Tensor* p : params) {
    TORCH_CHECK(p->dim() == 1 && p->size(0) == H && p->is_contiguous() &&
                    p->scalar_type() == x.scalar_type(),
                "spikekws_scan: parameters must be contiguous [H] of x's dtype");
  }
  if (weight.has_value() && weight->defined()) {
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == H && weight->size(1) == H &&
                    weight->scalar_type() == x.scalar_type(),
                "spikekws_scan: recurrent weight must be [H, H] of x's dtype");
  }
}

inline bool has_weight(const c10::optional<Tensor>& w) { return w.has_value() && w->defined(); }

// ------------------------------------------------------------------------------------
// Output buffers
//
// Each fused call allocates its outputs: spikes, traces and products of several MB each.
// glibc hands large freed blocks back to the system (unmapping them or trimming the heap),
// so the next call's block of the same size is faulted in again page by page: about 1600
// page faults for the 6.4 MB of a [100, 32, 512] spike tensor, which cost as much as the
// scan that fills it. The kernels therefore take their large buffers from a pool: blocks of
// at least kPoolMinBytes freed by their tensors are kept (up to a limit, SPIKEKWS_POOL_MB,
// default 1024; 0 turns the pool off) and handed out again for requests of up to their
// size and at least 4/5 of it. pool_release() frees the kept blocks; pool_info() reports
// them. The pool is never destroyed (tensors may outlive static destructors at exit).
// ------------------------------------------------------------------------------------
constexpr size_t kPoolMinBytes = size_t(1) << 20;

class BlockPool final : public c10::Allocator {
 public:
  BlockPool() {
    const char* env = std::getenv("SPIKEKWS_POOL_MB");
    int64_t mb = 1024;
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0) {
        mb = v;
      } else {
        TORCH_WARN("SPIKEKWS_POOL_MB=", env, " is not a whole number of MB >= 0; the fused "
                   "kernels' buffer pool keeps up to ", mb, " MB");
      }
    }
    limit_ = static_cast<size_t>(mb) << 20;
  }

  c10::DataPtr allocate(size_t n) override {
    if (n < kPoolMinBytes) return c10::GetCPUAllocator()->allocate(n);
    void* ptr = nullptr;
    size_t bytes = n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first - n <= it->first / 5) {
        bytes = it->first;
        ptr = it->second;
        cached_ -= bytes;
        free_.erase(it);
        ++hits_;
      } else {
        ++misses_;
      }
    }
    if (ptr == nullptr) ptr = c10::alloc_cpu(n);
    return {ptr, new Block{ptr, bytes, this}, &BlockPool::give_back, c10::Device(c10::kCPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // {bytes kept, blocks kept, requests served from the pool, requests allocated, limit}
  std::vector<int64_t> info() {
    std::lock_guard<std::mutex> lock(mu_);
    return {static_cast<int64_t>(cached_), static_cast<int64_t>(free_.size()), hits_, misses_,
            static_cast<int64_t>(limit_)};
  }

  // Frees the kept blocks; with limit >= 0 also sets the limit. Returns the bytes freed.
  int64_t release(int64_t limit) {
    std::multimap<size_t, void*> blocks;
    size_t freed = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      freed = cached_;
      cached_ = 0;
      if (limit >= 0) limit_ = static_cast<size_t>(limit);
    }
    for (auto& kv : blocks) c10::free_cpu(kv.second);
    return static_cast<int64_t>(freed);
  }

 private:
  struct Block {
    void* ptr;
    size_t bytes;
    BlockPool* pool;
  };

  static void give_back(void* ctx) {
    Block* block = static_cast<Block*>(ctx);
    block->pool->keep(block->ptr, block->bytes);
    delete block;
  }

  void keep(void* ptr, size_t bytes) {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (bytes <= limit_) {
        // make room by dropping the smallest blocks kept
        while (cached_ + bytes > limit_ && !free_.empty()) {
          cached_ -= free_.begin()->first;
          evicted.push_back(free_.begin()->second);
          free_.erase(free_.begin());
        }
        free_.emplace(bytes, ptr);
        cached_ += bytes;
        ptr = nullptr;
      }
    }
    for (void* p : evicted) c10::free_cpu(p);
    if (ptr != nullptr) c10::free_cpu(ptr);
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
  size_t limit_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

BlockPool& block_pool() {
  static BlockPool* pool = new BlockPool();  // never destroyed, see above
  return *pool;
}

// at::empty for the kernels' outputs and scratch: contiguous, CPU, from the pool.
Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return Tensor(at::detail::empty_generic(sizes, &block_pool(),
                                          c10::DispatchKeySet(c10::DispatchKey::CPU),
                                          c10::typeMetaToScalarType(options.dtype()),
                                          c10::nullopt));
}

Tensor pooled_empty_like(const Tensor& x) { return pooled_empty(x.sizes(), x.options()); }

Tensor pooled_zeros(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return pooled_empty(sizes, options).zero_();
}

// A contiguous copy of a (possibly transposed) tensor, into a pooled buffer.
Tensor pooled_contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return pooled_empty(x.sizes(), x.options()).copy_(x);
}

// x^T of a 2-D tensor as a contiguous pooled tensor. A contiguous x is copied in tiles of
// 16 x 16 (a strided copy reads each output row's inputs a cache line apart: 1 MB took
// about 0.15 ms, the tiles a fraction of it); other layouts take torch's copy.
Tensor pooled_transpose(const Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "spikekws_scan: transpose of a 2-D tensor, got ", x.sizes());
  if (!x.is_contiguous() || x.numel() == 0) return pooled_contiguous(x.t());
  const int64_t R = x.size(0), C = x.size(1);
  Tensor out = pooled_empty({C, R}, x.options());
  constexpr int64_t kTile = 16;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pooled_transpose", [&] {
    using T = scalar_t;
    const T* src = x.data_ptr<T>();
    T* dst = out.data_ptr<T>();
    const int64_t tiles = (R + kTile - 1) / kTile;
    at::parallel_for(0, tiles, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C * kTile)),
                     [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r0 = i * kTile, r1 = std::min(R, r0 + kTile);
        for (int64_t c0 = 0; c0 < C; c0 += kTile) {
          const int64_t c1 = std::min(C, c0 + kTile);
          for (int64_t c = c0; c < c1; ++c) {
            for (int64_t r = r0; r < r1; ++r) dst[c * R + r] = src[r * C + c];
          }
        }
      }
    });
  });
  return out;
}

std::vector<int64_t> pool_info() { return block_pool().info(); }

int64_t pool_release(int64_t limit_bytes) { return block_pool().release(limit_bytes); }

// Recurrent input s_{t-1} V^T for one step. Spikes are binary and mostly zero, so below
// kSparseDensity (per block of rows) the product is a sum of the rows of V^T picked by the
// active neurons (per row, in neuron order); above it, one GEMM on the block.
// The sparse sums are the event product below (event_product), shared with the linear
// layers.
constexpr double kSparseDensity = 0.2;

#if defined(SPIKEKWS_X86_ISA) && defined(__linux__)
#define SPIKEKWS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPIKEKWS_CLONES
#endif

// For the bodies of cloned functions: inlined into each clone, so that they are compiled for
// its instruction set (a separate copy would be compiled for the default one).
#if defined(__GNUC__)
#define SPIKEKWS_INLINE __attribute__((always_inline)) inline
#else
#define SPIKEKWS_INLINE inline
#endif

// Sums of selected rows of a matrix, the core of every event-driven product:
//   y[r, :] = init + sum_k vals[k] * wt[cols[k], :]   over the entries k of row r,
// with the entries of each row in column order, so that every output element sums in the
// same order as a plain loop over the non-zero inputs (and the result does not depend on
// the thread count). Rows are taken in blocks of kEventRows: first the non-zero entries of
// the block are listed (branch-free), then the outputs are computed in chunks of columns,
// each row's chunk accumulated in registers while the slice of wt the chunk reads stays in
// cache for the whole block. The product is bound by reading wt, so it is compiled for
// several instruction sets (chunks of 8 vectors of the widest registers) and picked at run
// time.
constexpr int64_t kEventRows = 256;

// Entries ahead whose weight rows are prefetched (hides the cache latency of their loads).
constexpr int64_t kPrefetch = 4;

// One chunk of NV vectors of BYTES bytes: y[r, h .. h + NV * lanes) for rows [0, n).
template <typename T, int BYTES, int NV>
SPIKEKWS_INLINE void row_sums_chunk(int64_t n, const int64_t* start, const int32_t* cols,
                                    const T* vals, const T* wt, int64_t O, const T* init,
                                    T* y, int64_t h) {
  typedef T V __attribute__((vector_size(BYTES)));
  constexpr int64_t L = BYTES / static_cast<int64_t>(sizeof(T));
  for (int64_t r = 0; r < n; ++r) {
    V acc[NV];
#pragma GCC unroll 16
    for (int u = 0; u < NV; ++u) {
      if (init != nullptr) {
        std::memcpy(&acc[u], init + h + u * L, sizeof(V));
      } else {
        acc[u] = V{};
      }
    }
    const int64_t end = start[r + 1];
    for (int64_t k = start[r]; k < end; ++k) {
      if (k + kPrefetch < end) {  // the rows a few entries ahead: their addresses are known
        const T* next = wt + static_cast<int64_t>(cols[k + kPrefetch]) * O + h;
#pragma GCC unroll 16
        for (int64_t line = 0; line < NV * BYTES; line += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(next) + line);
        }
      }
      const T* w = wt + static_cast<int64_t>(cols[k]) * O + h;
      const V s = V{} + vals[k];
#pragma GCC unroll 16
      for (int u = 0; u < NV; ++u) {
        V wv;
        std::memcpy(&wv, w + u * L, sizeof(V));
        acc[u] += s * wv;
      }
    }
    T* o = y + r * O + h;
#pragma GCC unroll 16
    for (int u = 0; u < NV; ++u) std::memcpy(o + u * L, &acc[u], sizeof(V));
  }
}

// One vector of BYTES bytes at column h if it fits below O, then the halves of that width
// down to one element: covers any remainder of fewer than 2 * BYTES / sizeof(T) columns.
// Returns the next column.
template <typename T, int BYTES>
SPIKEKWS_INLINE int64_t row_sums_halves(int64_t n, const int64_t* start, const int32_t* cols,
                                        const T* vals, const T* wt, int64_t O, const T* init,
                                        T* y, int64_t h) {
  constexpr int64_t L = BYTES / static_cast<int64_t>(sizeof(T));
  if (h + L <= O) {
    row_sums_chunk<T, BYTES, 1>(n, start, cols, vals, wt, O, init, y, h);
    h += L;
  }
  if constexpr (BYTES / 2 >= static_cast<int>(sizeof(T))) {
    return row_sums_halves<T, BYTES / 2>(n, start, cols, vals, wt, O, init, y, h);
  }
  return h;
}

// The columns [h, O) left after the chunks of 8 vectors: one chunk of the remaining whole
// vectors, then narrower vectors (each output still sums its entries in order, whatever
// chunk it falls in; a scalar loop per column there was slower than the whole product for
// a 20-class readout).
template <typename T, int BYTES>
SPIKEKWS_INLINE void row_sums_tail(int64_t n, const int64_t* start, const int32_t* cols,
                                   const T* vals, const T* wt, int64_t O, const T* init, T* y,
                                   int64_t h) {
  constexpr int64_t L = BYTES / static_cast<int64_t>(sizeof(T));
  const int64_t whole = (O - h) / L;
#define SPIKEKWS_CHUNK(NV) row_sums_chunk<T, BYTES, NV>(n, start, cols, vals, wt, O, init, y, h)
  switch (whole) {
    case 0: break;
    case 1: SPIKEKWS_CHUNK(1); break;
    case 2: SPIKEKWS_CHUNK(2); break;
    case 3: SPIKEKWS_CHUNK(3); break;
    case 4: SPIKEKWS_CHUNK(4); break;
    case 5: SPIKEKWS_CHUNK(5); break;
    case 6: SPIKEKWS_CHUNK(6); break;
    default: SPIKEKWS_CHUNK(7); break;
  }
#undef SPIKEKWS_CHUNK
  h += whole * L;
  if constexpr (BYTES / 2 >= static_cast<int>(sizeof(T))) {
    row_sums_halves<T, BYTES / 2>(n, start, cols, vals, wt, O, init, y, h);
  }
}

template <typename T, int BYTES>
SPIKEKWS_INLINE void selected_row_sums(int64_t n, const int64_t* start, const int32_t* cols,
                                       const T* vals, const T* wt, int64_t O, const T* init,
                                       T* y) {
  constexpr int64_t L = BYTES / static_cast<int64_t>(sizeof(T));
  int64_t h = 0;
  for (; h + 8 * L <= O; h += 8 * L) {
    row_sums_chunk<T, BYTES, 8>(n, start, cols, vals, wt, O, init, y, h);
  }
  row_sums_tail<T, BYTES>(n, start, cols, vals, wt, O, init, y, h);
}

#ifdef SPIKEKWS_X86_ISA
template <typename T>
__attribute__((target("avx512f"))) void row_sums_avx512(
    int64_t n, const int64_t* start, const int32_t* cols, const T* vals, const T* wt, int64_t O,
    const T* init, T* y) {
  selected_row_sums<T, 64>(n, start, cols, vals, wt, O, init, y);
}

template <typename T>
__attribute__((target("avx2"))) void row_sums_avx2(
    int64_t n, const int64_t* start, const int32_t* cols, const T* vals, const T* wt, int64_t O,
    const T* init, T* y) {
  selected_row_sums<T, 32>(n, start, cols, vals, wt, O, init, y);
}

// 2: AVX-512, 1: AVX2, 0: neither. The environment variable SPIKEKWS_SCAN_ISA (avx2 or
// default) caps it, so that the narrower paths can be tested on a wider CPU.
inline int cpu_vector_level() {
  static const int level = [] {
    int hw = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    const char* cap = std::getenv("SPIKEKWS_SCAN_ISA");
    if (cap != nullptr && std::strcmp(cap, "avx2") == 0) hw = std::min(hw, 1);
    if (cap != nullptr && std::strcmp(cap, "default") == 0) hw = 0;
    return hw;
  }();
  return level;
}
#endif

// Whether the events of T inputs are listed with AVX-512 compress instructions.
template <typename T>
inline bool compress_gather() {
#ifdef SPIKEKWS_X86_ISA
  return std::is_same<T, float>::value && cpu_vector_level() == 2;
#else
  return false;
#endif
}

template <typename T>
void row_sums(int64_t n, const int64_t* start, const int32_t* cols, const T* vals, const T* wt,
              int64_t O, const T* init, T* y) {
#ifdef SPIKEKWS_X86_ISA
  const int level = cpu_vector_level();
  if (level == 2) return row_sums_avx512<T>(n, start, cols, vals, wt, O, init, y);
  if (level == 1) return row_sums_avx2<T>(n, start, cols, vals, wt, O, init, y);
#endif
  selected_row_sums<T, 16>(n, start, cols, vals, wt, O, init, y);
}

// Appends the non-zero entries of xr[j0 .. K) at entry k of c (columns) and v (values);
// returns the next free entry. Branch-free.
template <typename T>
inline int64_t append_events(const T* xr, int64_t j0, int64_t K, int32_t* c, T* v, int64_t k) {
  for (int64_t j = j0; j < K; ++j) {
    const T xj = xr[j];
    c[k] = static_cast<int32_t>(j);
    v[k] = xj;
    k += xj != T(0);
  }
  return k;
}

// The non-zero entries of rows [0, n) of x (row stride K), in row and column order: the
// column indices into c and the values into v (both with room for n * K + 16 entries), the
// offset of each row's first entry into start (n + 1 entries).
template <typename T>
inline void gather_events(int64_t n, int64_t K, const T* x, int32_t* c, T* v, int64_t* start) {
  int64_t k = 0;
  for (int64_t r = 0; r < n; ++r) {
    start[r] = k;
    k = append_events(x + r * K, 0, K, c, v, k);
  }
  start[n] = k;
}

#ifdef SPIKEKWS_X86_ISA
// The same with AVX-512 (float): 16 inputs at a time, their non-zero entries packed by
// compress instructions and stored whole (the slack of 16 entries takes the excess).
__attribute__((target("avx512f"))) void gather_events_avx512(int64_t n, int64_t K,
                                                             const float* x, int32_t* c,
                                                             float* v, int64_t* start) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 zero = _mm512_setzero_ps();
  int64_t k = 0;
  for (int64_t r = 0; r < n; ++r) {
    start[r] = k;
    const float* xr = x + r * K;
    int64_t j = 0;
    for (; j + 16 <= K; j += 16) {
      const __m512 xv = _mm512_loadu_ps(xr + j);
      const __mmask16 m = _mm512_cmp_ps_mask(xv, zero, _CMP_NEQ_UQ);
      const __m512i idx = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(j)));
      _mm512_storeu_ps(v + k, _mm512_maskz_compress_ps(m, xv));
      _mm512_storeu_si512(static_cast<void*>(c + k), _mm512_maskz_compress_epi32(m, idx));
      k += __builtin_popcount(static_cast<unsigned>(m));
    }
    k = append_events(xr, j, K, c, v, k);
  }
  start[n] = k;
}
#endif

template <typename T>
struct EventList {
  std::vector<int32_t> cols;
  std::vector<T> vals;
  std::vector<int64_t> start;  // row r's entries: [start[r], start[r + 1])

  // Lists the non-zero entries of rows [0, n) of x (row stride K).
  void gather(int64_t n, int64_t K, const T* x) {
    const size_t room = static_cast<size_t>(n * K + 16);
    if (cols.size() < room) {
      cols.resize(room);
      vals.resize(room);
    }
    start.resize(static_cast<size_t>(n + 1));
#ifdef SPIKEKWS_X86_ISA
    if constexpr (std::is_same<T, float>::value) {
      if (compress_gather<T>()) {
        gather_events_avx512(n, K, x, cols.data(), vals.data(), start.data());
        return;
      }
    }
#endif
    gather_events<T>(n, K, x, cols.data(), vals.data(), start.data());
  }
};

// The calling thread's event list, kept between calls: a fresh one per call would map and
// fault in its pages (about 1 MB for 512 inputs) every time.
template <typename T>
EventList<T>& event_scratch() {
  thread_local EventList<T> list;
  return list;
}

// y[r] = init + x[r] W for rows [r0, r1) of x ([N, K]) and y ([N, O]), wt = W ([K, O]),
// from the non-zero entries of x; list is the task's scratch.
template <typename T>
void event_product(int64_t r0, int64_t r1, int64_t K, int64_t O, const T* x, const T* wt,
                   const T* init, T* y, EventList<T>& list) {
  for (int64_t b0 = r0; b0 < r1; b0 += kEventRows) {
    const int64_t n = std::min(kEventRows, r1 - b0);
    list.gather(n, K, x + b0 * K);
    row_sums<T>(n, list.start.data(), list.cols.data(), list.vals.data(), wt, O, init,
                y + b0 * O);
  }
}

// Backward through the recurrence, d/ds_{t-1} += gI_t V, restricted to the columns that are
// used. d/ds_{t-1}[j] only enters the gradient multiplied by the surrogate derivative at
// v_{t-1}[j]; for surrogates with compact support (boxcar, triangle) that is zero for most
// neurons, so the dense product computes mostly unused entries. Below kMaskedDensity
// (per block of rows) only the used entries are computed, each as a dot product of the row
// of gI_t with a row of V^T; above it, one GEMM on the block. Unused entries then miss the
// recurrent term, which is multiplied by zero: the gradients are those of the dense
// product (up to summation order), except that a non-finite gI_t no longer reaches them.
constexpr double kMaskedDensity = 0.3;

template <typename T>
struct Lanes {
  typedef T type __attribute__((vector_size(32)));
};

template <typename T>
inline T dot_product(const T* a, const T* b, int64_t n) {
  typedef typename Lanes<T>::type V;
  constexpr int64_t L = 32 / sizeof(T);
  V s0{}, s1{}, s2{}, s3{};
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    V a0, a1, a2, a3, b0, b1, b2, b3;
    std::memcpy(&a0, a + i, sizeof(V));
    std::memcpy(&a1, a + i + L, sizeof(V));
    std::memcpy(&a2, a + i + 2 * L, sizeof(V));
    std::memcpy(&a3, a + i + 3 * L, sizeof(V));
    std::memcpy(&b0, b + i, sizeof(V));
    std::memcpy(&b1, b + i + L, sizeof(V));
    std::memcpy(&b2, b + i + 2 * L, sizeof(V));
    std::memcpy(&b3, b + i + 3 * L, sizeof(V));
    s0 += a0 * b0;
    s1 += a1 * b1;
    s2 += a2 * b2;
    s3 += a3 * b3;
  }
  const V sv = (s0 + s1) + (s2 + s3);
  T acc = T(0);
  for (int64_t l = 0; l < L; ++l) acc += sv[l];
  for (; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

template <typename T>
inline void masked_dots(int64_t n, const int64_t* cols, const T* g, const T* vt, int64_t H,
                        T* out) {
  for (int64_t k = 0; k < n; ++k) out[cols[k]] += dot_product(g, vt + cols[k] * H, H);
}

SPIKEKWS_CLONES void masked_dot(int64_t n, const int64_t* cols, const float* g, const float* vt,
                                int64_t H, float* out) {
  masked_dots<float>(n, cols, g, vt, H, out);
}

SPIKEKWS_CLONES void masked_dot(int64_t n, const int64_t* cols, const double* g,
                                const double* vt, int64_t H, double* out) {
  masked_dots<double>(n, cols, g, vt, H, out);
}

// cs[r] += gI_t[r] V on the columns where the surrogate derivative at v_prev is non-zero,
// rows [r0, r1); returns false (nothing done) when those are too many for it to pay.
// g, vprev and cs point at row 0 of their [M, H] step; vt is V^T. cols, counts: scratch.
template <int64_t S, typename T>
inline bool masked_recurrent_grad(int64_t r0, int64_t r1, int64_t H, const T* g, const T* vt,
                                  const T* vprev, T* cs, T th, T p1, T p2,
                                  std::vector<int64_t>& cols, std::vector<int64_t>& counts) {
  if constexpr (S != kBoxcar && S != kTriangle) {
    return false;
  } else {
    const int64_t limit = static_cast<int64_t>(kMaskedDensity * static_cast<double>((r1 - r0) * H));
    cols.resize(static_cast<size_t>((r1 - r0) * H));
    counts.resize(static_cast<size_t>(r1 - r0));
    int64_t total = 0;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t* c = cols.data() + (r - r0) * H;
      const T* v = vprev + r * H;
      int64_t n = 0;
      for (int64_t j = 0; j < H; ++j) {
        if (surrogate_grad<S, T>(v[j] - th, p1, p2) != T(0)) c[n++] = j;
      }
      counts[r - r0] = n;
      total += n;
      if (total > limit) return false;
    }
    for (int64_t r = r0; r < r1; ++r) {
      masked_dot(counts[r - r0], cols.data() + (r - r0) * H, g + r * H, vt, H, cs + r * H);
    }
    return true;
  }
}

// The backward time loop of a scan, t = nT - 1 .. 0, over blocks of rows: samples are
// independent, so each task runs the whole loop on its rows. With a recurrent weight V,
// after each step d/ds_{t-1} += gI_t V (through I_t = x_t + s_{t-1} V^T) goes into cs: on
// the used entries only (masked_recurrent_grad) or as one GEMM on the block; at t = 0 it
// is grad s0, needed in full. step(t, r0, r1) runs one step on the rows; gx is the
// gradient of the input current, v_trace the membrane trace (both [T, M, H]).
template <int64_t S, typename T, typename Step>
void backward_over_time(const Step& step, int64_t nT, int64_t M, int64_t H,
                        const c10::optional<Tensor>& weight, const Tensor& gx, Tensor& cs,
                        const T* v_trace, T th, T p1, T p2) {
  if (!has_weight(weight)) {
    at::parallel_for(0, M, row_grain(nT * H, 65536), [&](int64_t r0, int64_t r1) {
      for (int64_t t = nT - 1; t >= 0; --t) step(t, r0, r1);
    });
    return;
  }
  const int64_t MH = M * H;
  const at::ThreadLocalState tls;  // the caller's grad / inference mode in the workers
  const Tensor w = weight->detach();
  const Tensor vt = pooled_transpose(w);  // row j = V[:, j]
  const T* vtp = vt.data_ptr<T>();
  const T* gxp = gx.data_ptr<T>();
  T* csp = cs.data_ptr<T>();
  at::parallel_for(0, M, row_grain(nT * H, 65536), [&](int64_t r0, int64_t r1) {
    at::ThreadLocalStateGuard tls_guard(tls);
    Tensor cs_block = cs.narrow(0, r0, r1 - r0);
    std::vector<int64_t> cols, counts;
    for (int64_t t = nT - 1; t >= 0; --t) {
      step(t, r0, r1);
      if (t > 0 && masked_recurrent_grad<S, T>(r0, r1, H, gxp + t * MH, vtp,
                                               v_trace + (t - 1) * MH, csp, th, p1, p2, cols,
                                               counts)) {
        continue;
      }
      cs_block.addmm_(gx.select(0, t).narrow(0, r0, r1 - r0), w);
    }
  });
}

template <typename T>
struct Recurrence {
  Tensor weight;  // V [H, H], detached: GEMMs run on worker threads, where grad mode is on
  Tensor vt;             // V^T, contiguous: row j = V[:, j]
  Tensor buf;            // [M, H] result
  int64_t H;

  Recurrence(const Tensor& w, int64_t M, int64_t H_, const at::TensorOptions& opt)
      : weight(w.detach()), vt(pooled_transpose(w)), buf(pooled_empty({M, H_}, opt)), H(H_) {}

  // s_{t-1} V^T for the rows [r0, r1) of spikes s ([M, H], data sp), into the same rows of
  // buf: sums of rows of V^T while the block's spikes are sparse, else one GEMM on the block.
  // Samples are independent, so each task runs the whole time loop on its own rows.
  void block(int64_t r0, int64_t r1, const Tensor& s, const T* sp, EventList<T>& list) {
    const T* b = sp + r0 * H;
    const int64_t n = (r1 - r0) * H;
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; ++i) nnz += b[i] != T(0);
    if (static_cast<double>(nnz) < kSparseDensity * static_cast<double>(n)) {
      event_product<T>(r0, r1, H, H, sp, vt.data_ptr<T>(), nullptr, buf.data_ptr<T>(), list);
    } else {
      Tensor o = buf.narrow(0, r0, r1 - r0);
      at::mm_out(o, s.narrow(0, r0, r1 - r0), weight.t());
    }
  }
};

// The input of a plain scan: x [T, M, H], step t at x + t * M * H, all steps at once.
template <typename T>
struct PlainInput {
  const T* x;
  int64_t MH;
  int64_t chunk(int64_t nT) const { return nT; }
  void prepare(int64_t, int64_t) const {}
  const T* step(int64_t t) const { return x + t * MH; }
};

// make_input for the *_forward_impl functions: the plain input x [T, M, H].
auto plain_input(const Tensor& x) {
  return [&x](auto tag) {
    using T = decltype(tag);
    return PlainInput<T>{x.data_ptr<T>(), x.size(1) * x.size(2)};
  };
}

// The forward time loop of a scan, t = 0 .. nT - 1, in chunks of input.chunk(nT) steps:
// input.prepare(t0, t1) makes steps [t0, t1) of the input available (a plain scan has them
// all; a fused layer computes its product for them, see InputProduct), then tasks run the
// chunk's steps over blocks of rows (samples are independent, so a task carries its rows
// through the chunk). input.step(t) is step t's input [M, H]. rows(t, r0, r1, x_t, rec, cur)
// runs one step on the rows. Without a recurrent weight rec and cur are null; with one, rec
// holds the rows' s_{t-1} V^T and the step writes the input current I_t to cur (in
// cur_trace[t] when it is saved, else in a scratch buffer). spikes [T, M, H] receives s_t
// as the steps write it; s0 is s_{-1}.
template <typename T, typename Rows, typename Input>
void forward_over_time(const Rows& rows, Input& input, int64_t nT, int64_t M, int64_t H,
                       const c10::optional<Tensor>& weight, const Tensor& s0,
                       const Tensor& spikes, const Tensor& cur_trace, bool save) {
  // Worker threads take the caller's thread-local state (grad / inference mode), so
  // that the GEMMs there may write into buffers made under inference mode.
  const at::ThreadLocalState tls;
  const int64_t MH = M * H;
  const bool rec = has_weight(weight);
  c10::optional<Recurrence<T>> recur;
  Tensor cur_buf;
  if (rec) {
    recur.emplace(*weight, M, H, spikes.options());
    if (!save) cur_buf = pooled_empty({M, H}, spikes.options());
  }
  const T* s0p = s0.data_ptr<T>();
  const T* sp = spikes.data_ptr<T>();
  const int64_t chunk = std::max<int64_t>(1, input.chunk(nT));
  for (int64_t t0 = 0; t0 < nT; t0 += chunk) {
    const int64_t t1 = std::min(nT, t0 + chunk);
    input.prepare(t0, t1);
    at::parallel_for(0, M, row_grain((t1 - t0) * H, 65536), [&](int64_t r0, int64_t r1) {
      at::ThreadLocalStateGuard tls_guard(tls);
      for (int64_t t = t0; t < t1; ++t) {
        if (!rec) {
          rows(t, r0, r1, input.step(t), static_cast<const T*>(nullptr), static_cast<T*>(nullptr));
          continue;
        }
        recur->block(r0, r1, t == 0 ? s0 : spikes.select(0, t - 1),
                     t == 0 ? s0p : sp + (t - 1) * MH, event_scratch<T>());
        T* cp = save ? cur_trace.data_ptr<T>() + t * MH : cur_buf.data_ptr<T>();
        rows(t, r0, r1, input.step(t), recur->buf.template data_ptr<T>(), cp);
      }
    });
  }
}

// Gradient of the recurrent weight: dV = sum_t gI_t^T s_{t-1} ([H, H]), where s_{t-1} is s0
// at t = 0 and (v_{t-1} - theta >= 0) after. With sparse spikes it is accumulated as
// dV^T[j, :] += s_{t-1}[b, j] gI_t[b, :] over the active (t, b, j), each task owning a block
// of j (deterministic for any thread count); with dense spikes, one GEMM.
template <typename T>
inline void weight_grad_rows(int64_t j0, int64_t j1, int64_t nT, int64_t M, int64_t H,
                             const T* gx, const T* v, const T* s0, T th, T* dvt) {
  for (int64_t t = 0; t < nT; ++t) {
    for (int64_t b = 0; b < M; ++b) {
      const T* g = gx + (t * M + b) * H;
      const T* src = t == 0 ? s0 + b * H : v + ((t - 1) * M + b) * H;
      for (int64_t j = j0; j < j1; ++j) {
        const T sj = t == 0 ? src[j] : ((src[j] - th) >= T(0) ? T(1) : T(0));
        if (sj == T(0)) continue;
        T* d = dvt + j * H;
#pragma GCC ivdep
        for (int64_t h = 0; h < H; ++h) d[h] += sj * g[h];
      }
    }
  }
}

SPIKEKWS_CLONES void weight_grad(int64_t j0, int64_t j1, int64_t nT, int64_t M, int64_t H,
                                 const float* gx, const float* v, const float* s0, float th,
                                 float* dvt) {
  weight_grad_rows<float>(j0, j1, nT, M, H, gx, v, s0, th, dvt);
}

SPIKEKWS_CLONES void weight_grad(int64_t j0, int64_t j1, int64_t nT, int64_t M, int64_t H,
                                 const double* gx, const double* v, const double* s0, double th,
                                 double* dvt) {
  weight_grad_rows<double>(j0, j1, nT, M, H, gx, v, s0, th, dvt);
}

Tensor recurrent_weight_grad(const Tensor& gx, const Tensor& v_trace, const Tensor& s0,
                             double theta) {
  const int64_t nT = gx.size(0), M = gx.size(1), H = gx.size(2), MH = M * H;
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "recurrent_weight_grad", [&] {
    using T = scalar_t;
    const T th = static_cast<T>(theta);
    const T* gp = gx.data_ptr<T>();
    const T* vp = v_trace.data_ptr<T>();
    const T* s0p = s0.data_ptr<T>();
    int64_t nnz = 0;
    for (int64_t i = 0; i < MH; ++i) nnz += s0p[i] != T(0);
    for (int64_t i = 0; i < (nT - 1) * MH; ++i) nnz += (vp[i] - th) >= T(0);
    if (static_cast<double>(nnz) < kSparseDensity * static_cast<double>(nT * MH)) {
      Tensor dvt = pooled_zeros({H, H}, gx.options());
      T* dp = dvt.data_ptr<T>();
      at::parallel_for(0, H, 16, [&](int64_t j0, int64_t j1) {
        weight_grad(j0, j1, nT, M, H, gp, vp, s0p, th, dp);
      });
      out = pooled_transpose(dvt);
    } else {
      Tensor s_prev = pooled_empty_like(gx);
      T* sp = s_prev.data_ptr<T>();
      std::copy(s0p, s0p + MH, sp);
      at::parallel_for(0, (nT - 1) * MH, 65536, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) sp[MH + i] = (vp[i] - th) >= T(0) ? T(1) : T(0);
      });
      out = at::mm(gx.view({nT * M, H}).t(), s_prev.view({nT * M, H}));
    }
  });
  return out;
}

// ------------------------------------------------------------------------------------
// LIF / RLIF
//   I_t = x_t + s_{t-1} V^T,  v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha) I_t,
//   s_t = H(v_t - theta)
// ------------------------------------------------------------------------------------

template <typename T>
SPIKEKWS_INLINE void lif_forward_rows(int64_t r0, int64_t r1, int64_t H, const T* x, const T* rec,
                                      T* cur_out, const T* vp, const T* sp, T* vo, T* so,
                                      const T* alpha, const T* oma, T th) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
    if (rec != nullptr) {
#pragma GCC ivdep
      for (int64_t h = 0; h < H; ++h) {
        const int64_t i = o + h;
        const T cur = x[i] + rec[i];
        cur_out[i] = cur;
        const T v = alpha[h] * (vp[i] - th * sp[i]) + oma[h] * cur;
        vo[i] = v;
        so[i] = (v - th) >= T(0) ? T(1) : T(0);
      }
    } else {
#pragma GCC ivdep
      for (int64_t h = 0; h < H; ++h) {
        const int64_t i = o + h;
        const T v = alpha[h] * (vp[i] - th * sp[i]) + oma[h] * x[i];
        vo[i] = v;
        so[i] = (v - th) >= T(0) ? T(1) : T(0);
      }
    }
  }
}

// The forward steps, compiled for several instruction sets like the products above.
SPIKEKWS_CLONES void lif_forward_kernel(int64_t r0, int64_t r1, int64_t H, const float* x,
                                        const float* rec, float* cur_out, const float* vp,
                                        const float* sp, float* vo, float* so, const float* alpha,
                                        const float* oma, float th) {
  lif_forward_rows<float>(r0, r1, H, x, rec, cur_out, vp, sp, vo, so, alpha, oma, th);
}

SPIKEKWS_CLONES void lif_forward_kernel(int64_t r0, int64_t r1, int64_t H, const double* x,
                                        const double* rec, double* cur_out, const double* vp,
                                        const double* sp, double* vo, double* so,
                                        const double* alpha, const double* oma, double th) {
  lif_forward_rows<double>(r0, r1, H, x, rec, cur_out, vp, sp, vo, so, alpha, oma, th);
}

// Adds the spikes of rows [r0, r1) of one step (s: [M, H], values 0 or 1) to counts[r], as
// a count of the non-zero entries (an integer sum vectorises; a float one would be a chain
// of dependent additions). Rows belong to one task, so the totals do not depend on the
// thread count.
int64_t count_nonzero(const float* x, int64_t n);  // below, with the event products
int64_t count_nonzero(const double* x, int64_t n);

template <typename T>
inline void count_spikes(int64_t r0, int64_t r1, int64_t H, const T* s, double* counts) {
  for (int64_t r = r0; r < r1; ++r) {
    counts[r] += static_cast<double>(count_nonzero(s + r * H, H));
  }
}

// Total of per-row counts as a float64 scalar tensor, summed in row order.
Tensor total_count(const std::vector<double>& counts) {
  double total = 0;
  for (double c : counts) total += c;
  return at::scalar_tensor(total, at::TensorOptions().dtype(at::kDouble));
}

// The LIF forward over steps of shape [M, H] from input(T{}) (see forward_over_time).
// Returns (spikes [T,M,H], v_last [M,H], v_trace [T,M,H] or empty, current trace or empty).
template <typename MakeInput>
std::tuple<Tensor, Tensor, Tensor, Tensor> lif_forward_impl(
    int64_t nT, int64_t M, int64_t H, const at::TensorOptions& opt, const MakeInput& make_input,
    const Tensor& v0, const Tensor& s0, const Tensor& alpha, const c10::optional<Tensor>& weight,
    double theta, bool save, double* counts = nullptr) {
  const int64_t MH = M * H;
  const bool rec = has_weight(weight);
  Tensor spikes = pooled_empty({nT, M, H}, opt);
  Tensor v_trace = save ? pooled_empty({nT, M, H}, opt) : pooled_empty({0}, opt);
  Tensor v_roll = save ? Tensor() : v0.clone();
  Tensor cur_trace = (rec && save) ? pooled_empty({nT, M, H}, opt) : pooled_empty({0}, opt);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(c10::typeMetaToScalarType(opt.dtype()), "lif_forward", [&] {
    using T = scalar_t;
    const T th = static_cast<T>(theta);
    const T* v0p = v0.data_ptr<T>();
    const T* s0p = s0.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* op = oma.data_ptr<T>();
    T* sp = spikes.data_ptr<T>();
    T* vtp = save ? v_trace.data_ptr<T>() : v_roll.data_ptr<T>();
    auto v_prev = [&](int64_t t) -> const T* {
      if (!save) return vtp;
      return t == 0 ? v0p : vtp + (t - 1) * MH;
    };
    auto v_out = [&](int64_t t) -> T* { return save ? vtp + t * MH : vtp; };
    auto s_prev = [&](int64_t t) -> const T* { return t == 0 ? s0p : sp + (t - 1) * MH; };
    auto input = make_input(T{});
    forward_over_time<T>(
        [&](int64_t t, int64_t r0, int64_t r1, const T* xt, const T* rp, T* cp) {
          lif_forward_kernel(r0, r1, H, xt, rp, cp, v_prev(t), s_prev(t), v_out(t), sp + t * MH,
                             ap, op, th);
          if (counts != nullptr) count_spikes(r0, r1, H, sp + t * MH, counts);
        },
        input, nT, M, H, weight, s0, spikes, cur_trace, save);
  });
  Tensor v_last = save ? v_trace.select(0, nT - 1).clone() : v_roll;
  return {spikes, v_last, v_trace, cur_trace};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> lif_forward(const Tensor& x, const Tensor& v0,
                                                       const Tensor& s0, const Tensor& alpha,
                                                       const c10::optional<Tensor>& weight,
                                                       double theta, bool save) {
  check_inputs(x, {&v0, &s0}, {&alpha}, weight);
  const int64_t nT = x.size(0), M = x.size(1), H = x.size(2);
  return lif_forward_impl(
      nT, M, H, x.options(),
      plain_input(x),
      v0, s0, alpha, weight, theta, save);
}

template <int64_t S, bool FIRST, typename T>
inline void lif_backward_rows(int64_t r0, int64_t r1, int64_t H, const T* gout, const T* v,
                              const T* vp, const T* s0, const T* cur, T* gx, T* cv, T* cs,
                              T* dalpha, const T* alpha, const T* oma, const T* cs_coef, T th,
                              T p1, T p2) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
#pragma GCC ivdep
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = o + h;
      const T gs = gout[i] + cs[i];
      const T gv = cv[i] + gs * surrogate_grad<S, T>(v[i] - th, p1, p2);
      const T vprev = vp[i];
      T sprev;
      if constexpr (FIRST) {
        sprev = s0[i];
      } else {
        sprev = (vprev - th) >= T(0) ? T(1) : T(0);
      }
      dalpha[i] += gv * ((vprev - th * sprev) - cur[i]);
      gx[i] = oma[h] * gv;
      cv[i] = alpha[h] * gv;
      cs[i] = cs_coef[h] * gv;
    }
  }
}

// Returns (grad_x, grad_alpha, grad_weight or empty, grad_v0, grad_s0).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lif_backward(
    const Tensor& grad_spikes, const Tensor& grad_v_last, const Tensor& cur,
    const Tensor& v_trace, const Tensor& v0, const Tensor& s0, const Tensor& alpha,
    const c10::optional<Tensor>& weight, double theta, bool detach_reset, int64_t surrogate,
    double p1, double p2) {
  check_inputs(cur, {&v0, &s0, &grad_v_last}, {&alpha}, weight);
  TORCH_CHECK(grad_spikes.sizes() == cur.sizes() && grad_spikes.is_contiguous() &&
                  v_trace.sizes() == cur.sizes() && v_trace.is_contiguous(),
              "spikekws_scan: lif_backward shape mismatch");
  const int64_t nT = cur.size(0), M = cur.size(1), H = cur.size(2), MH = M * H;
  const bool rec = has_weight(weight);
  Tensor gx = pooled_empty_like(cur);
  Tensor cv = grad_v_last.clone();  // d/dv_t carried backwards; ends as grad v0
  Tensor cs = at::zeros_like(v0);   // d/ds_t carried backwards; ends as grad s0
  Tensor dacc = at::zeros_like(v0);
  Tensor cs_coef = detach_reset ? at::zeros_like(alpha) : alpha * (-theta);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(cur.scalar_type(), "lif_backward", [&] {
    using T = scalar_t;
    const T th = static_cast<T>(theta), q1 = static_cast<T>(p1), q2 = static_cast<T>(p2);
    const T* gop = grad_spikes.data_ptr<T>();
    const T* cp = cur.data_ptr<T>();
    const T* vtp = v_trace.data_ptr<T>();
    const T* v0p = v0.data_ptr<T>();
    const T* s0p = s0.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* op = oma.data_ptr<T>();
    const T* ccp = cs_coef.data_ptr<T>();
    T* gxp = gx.data_ptr<T>();
    T* cvp = cv.data_ptr<T>();
    T* csp = cs.data_ptr<T>();
    T* dap = dacc.data_ptr<T>();
    with_surrogate(surrogate, [&](auto tag) {
      constexpr int64_t S = decltype(tag)::value;
      auto step = [&](int64_t t, int64_t r0, int64_t r1) {
        const int64_t off = t * MH;
        if (t == 0) {
          lif_backward_rows<S, true, T>(r0, r1, H, gop, vtp, v0p, s0p, cp, gxp, cvp, csp, dap, ap,
                                        op, ccp, th, q1, q2);
        } else {
          lif_backward_rows<S, false, T>(r0, r1, H, gop + off, vtp + off, vtp + off - MH, nullptr,
                                         cp + off, gxp + off, cvp, csp, dap, ap, op, ccp, th, q1,
                                         q2);
        }
      };
      backward_over_time<S, T>(step, nT, M, H, weight, gx, cs, vtp, th, q1, q2);
    });
  });
  Tensor grad_alpha = dacc.sum(0);
  Tensor grad_w = pooled_empty({0}, cur.options());
  if (rec) {
    grad_w = recurrent_weight_grad(gx, v_trace, s0, theta);
  }
  return {gx, grad_alpha, grad_w, cv, cs};
}

// ------------------------------------------------------------------------------------
// AdLIF / RadLIF
//   w_t = beta w_{t-1} + a v_{t-1} + b s_{t-1}
//   v_t = alpha (v_{t-1} - theta s_{t-1}) + (1 - alpha) (I_t - w_t),  s_t = H(v_t - theta)
// ------------------------------------------------------------------------------------

template <typename T>
SPIKEKWS_INLINE void adlif_forward_rows(int64_t r0, int64_t r1, int64_t H, const T* x, const T* rec,
                                        T* cur_out, const T* vp, const T* wp, const T* sp, T* vo,
                                        T* wo, T* so, const T* alpha, const T* oma, const T* beta,
                                        const T* a, const T* b, T th) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
    if (rec != nullptr) {
#pragma GCC ivdep
      for (int64_t h = 0; h < H; ++h) {
        const int64_t i = o + h;
        const T cur = x[i] + rec[i];
        cur_out[i] = cur;
        const T w = beta[h] * wp[i] + a[h] * vp[i] + b[h] * sp[i];
        const T v = alpha[h] * (vp[i] - th * sp[i]) + oma[h] * (cur - w);
        wo[i] = w;
        vo[i] = v;
        so[i] = (v - th) >= T(0) ? T(1) : T(0);
      }
    } else {
#pragma GCC ivdep
      for (int64_t h = 0; h < H; ++h) {
        const int64_t i = o + h;
        const T w = beta[h] * wp[i] + a[h] * vp[i] + b[h] * sp[i];
        const T v = alpha[h] * (vp[i] - th * sp[i]) + oma[h] * (x[i] - w);
        wo[i] = w;
        vo[i] = v;
        so[i] = (v - th) >= T(0) ? T(1) : T(0);
      }
    }
  }
}

SPIKEKWS_CLONES void adlif_forward_kernel(int64_t r0, int64_t r1, int64_t H, const float* x,
                                          const float* rec, float* cur_out, const float* vp,
                                          const float* wp, const float* sp, float* vo, float* wo,
                                          float* so, const float* alpha, const float* oma,
                                          const float* beta, const float* a, const float* b,
                                          float th) {
  adlif_forward_rows<float>(r0, r1, H, x, rec, cur_out, vp, wp, sp, vo, wo, so, alpha, oma, beta, a,
                            b, th);
}

SPIKEKWS_CLONES void adlif_forward_kernel(int64_t r0, int64_t r1, int64_t H, const double* x,
                                          const double* rec, double* cur_out, const double* vp,
                                          const double* wp, const double* sp, double* vo,
                                          double* wo, double* so, const double* alpha,
                                          const double* oma, const double* beta, const double* a,
                                          const double* b, double th) {
  adlif_forward_rows<double>(r0, r1, H, x, rec, cur_out, vp, wp, sp, vo, wo, so, alpha, oma, beta,
                             a, b, th);
}

// The AdLIF forward over steps of shape [M, H] from input(T{}) (see forward_over_time).
// Returns (spikes, v_last, w_last, v_trace or empty, w_trace or empty, current trace or empty).
template <typename MakeInput>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> adlif_forward_impl(
    int64_t nT, int64_t M, int64_t H, const at::TensorOptions& opt, const MakeInput& make_input,
    const Tensor& v0, const Tensor& w0, const Tensor& s0, const Tensor& alpha,
    const Tensor& beta, const Tensor& a, const Tensor& b, const c10::optional<Tensor>& weight,
    double theta, bool save, double* counts = nullptr) {
  const int64_t MH = M * H;
  const bool rec = has_weight(weight);
  Tensor spikes = pooled_empty({nT, M, H}, opt);
  Tensor v_trace = save ? pooled_empty({nT, M, H}, opt) : pooled_empty({0}, opt);
  Tensor w_trace = save ? pooled_empty({nT, M, H}, opt) : pooled_empty({0}, opt);
  Tensor v_roll = save ? Tensor() : v0.clone();
  Tensor w_roll = save ? Tensor() : w0.clone();
  Tensor cur_trace = (rec && save) ? pooled_empty({nT, M, H}, opt) : pooled_empty({0}, opt);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(c10::typeMetaToScalarType(opt.dtype()), "adlif_forward", [&] {
    using T = scalar_t;
    const T th = static_cast<T>(theta);
    const T* v0p = v0.data_ptr<T>();
    const T* w0p = w0.data_ptr<T>();
    const T* s0p = s0.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* op = oma.data_ptr<T>();
    const T* bp = beta.data_ptr<T>();
    const T* aap = a.data_ptr<T>();
    const T* bbp = b.data_ptr<T>();
    T* sp = spikes.data_ptr<T>();
    T* vtp = save ? v_trace.data_ptr<T>() : v_roll.data_ptr<T>();
    T* wtp = save ? w_trace.data_ptr<T>() : w_roll.data_ptr<T>();
    auto prev = [&](T* trace, const T* init, int64_t t) -> const T* {
      if (!save) return trace;
      return t == 0 ? init : trace + (t - 1) * MH;
    };
    auto out = [&](T* trace, int64_t t) -> T* { return save ? trace + t * MH : trace; };
    auto s_prev = [&](int64_t t) -> const T* { return t == 0 ? s0p : sp + (t - 1) * MH; };
    auto input = make_input(T{});
    forward_over_time<T>(
        [&](int64_t t, int64_t r0, int64_t r1, const T* xt, const T* rp, T* cp) {
          adlif_forward_kernel(r0, r1, H, xt, rp, cp, prev(vtp, v0p, t), prev(wtp, w0p, t),
                               s_prev(t), out(vtp, t), out(wtp, t), sp + t * MH, ap, op, bp,
                               aap, bbp, th);
          if (counts != nullptr) count_spikes(r0, r1, H, sp + t * MH, counts);
        },
        input, nT, M, H, weight, s0, spikes, cur_trace, save);
  });
  Tensor v_last = save ? v_trace.select(0, nT - 1).clone() : v_roll;
  Tensor w_last = save ? w_trace.select(0, nT - 1).clone() : w_roll;
  return {spikes, v_last, w_last, v_trace, w_trace, cur_trace};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> adlif_forward(
    const Tensor& x, const Tensor& v0, const Tensor& w0, const Tensor& s0, const Tensor& alpha,
    const Tensor& beta, const Tensor& a, const Tensor& b, const c10::optional<Tensor>& weight,
    double theta, bool save) {
  check_inputs(x, {&v0, &w0, &s0}, {&alpha, &beta, &a, &b}, weight);
  const int64_t nT = x.size(0), M = x.size(1), H = x.size(2);
  return adlif_forward_impl(
      nT, M, H, x.options(),
      plain_input(x),
      v0, w0, s0, alpha, beta, a, b, weight, theta, save);
}

template <typename T>
struct AdLIFGrads {
  T* gx;
  T* cv;
  T* cw;
  T* cs;
  T* d_alpha;
  T* d_beta;
  T* d_a;
  T* d_b;
};

template <typename T>
struct AdLIFParams {
  const T* alpha;
  const T* oma;
  const T* beta;
  const T* a;
  const T* b;
  const T* cs_coef;
};

template <int64_t S, bool FIRST, typename T>
inline void adlif_backward_rows(int64_t r0, int64_t r1, int64_t H, const T* gout, const T* v,
                                const T* w, const T* vp, const T* wp, const T* s0, const T* cur,
                                int64_t off, const AdLIFGrads<T>& g, const AdLIFParams<T>& p,
                                T th, T p1, T p2) {
  T* gx = g.gx + off;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
#pragma GCC ivdep
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = o + h;
      const T gs = gout[i] + g.cs[i];
      const T gv = g.cv[i] + gs * surrogate_grad<S, T>(v[i] - th, p1, p2);
      const T gw = g.cw[i] - p.oma[h] * gv;
      const T vprev = vp[i];
      const T wprev = wp[i];
      T sprev;
      if constexpr (FIRST) {
        sprev = s0[i];
      } else {
        sprev = (vprev - th) >= T(0) ? T(1) : T(0);
      }
      g.d_alpha[i] += gv * ((vprev - th * sprev) - (cur[i] - w[i]));
      g.d_beta[i] += gw * wprev;
      g.d_a[i] += gw * vprev;
      g.d_b[i] += gw * sprev;
      gx[i] = p.oma[h] * gv;
      g.cv[i] = p.alpha[h] * gv + p.a[h] * gw;
      g.cw[i] = p.beta[h] * gw;
      g.cs[i] = p.cs_coef[h] * gv + p.b[h] * gw;
    }
  }
}

// Returns (grad_x, grad_alpha, grad_beta, grad_a, grad_b, grad_weight or empty,
//          grad_v0, grad_w0, grad_s0).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> adlif_backward(
    const Tensor& grad_spikes, const Tensor& grad_v_last, const Tensor& grad_w_last,
    const Tensor& cur, const Tensor& v_trace, const Tensor& w_trace, const Tensor& v0,
    const Tensor& w0, const Tensor& s0, const Tensor& alpha, const Tensor& beta, const Tensor& a,
    const Tensor& b, const c10::optional<Tensor>& weight, double theta, bool detach_reset,
    int64_t surrogate, double p1, double p2) {
  check_inputs(cur, {&v0, &w0, &s0, &grad_v_last, &grad_w_last}, {&alpha, &beta, &a, &b}, weight);
  TORCH_CHECK(grad_spikes.sizes() == cur.sizes() && grad_spikes.is_contiguous() &&
                  v_trace.sizes() == cur.sizes() && v_trace.is_contiguous() &&
                  w_trace.sizes() == cur.sizes() && w_trace.is_contiguous(),
              "spikekws_scan: adlif_backward shape mismatch");
  const int64_t nT = cur.size(0), M = cur.size(1), H = cur.size(2), MH = M * H;
  const bool rec = has_weight(weight);
  Tensor gx = pooled_empty_like(cur);
  Tensor cv = grad_v_last.clone();
  Tensor cw = grad_w_last.clone();
  Tensor cs = at::zeros_like(v0);
  Tensor acc = pooled_zeros({4, M, H}, v0.options());  // d alpha, d beta, d a, d b per element
  Tensor cs_coef = detach_reset ? at::zeros_like(alpha) : alpha * (-theta);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(cur.scalar_type(), "adlif_backward", [&] {
    using T = scalar_t;
    const T th = static_cast<T>(theta), q1 = static_cast<T>(p1), q2 = static_cast<T>(p2);
    const T* gop = grad_spikes.data_ptr<T>();
    const T* cp = cur.data_ptr<T>();
    const T* vtp = v_trace.data_ptr<T>();
    const T* wtp = w_trace.data_ptr<T>();
    const T* v0p = v0.data_ptr<T>();
    const T* w0p = w0.data_ptr<T>();
    const T* s0p = s0.data_ptr<T>();
    T* accp = acc.data_ptr<T>();
    const AdLIFGrads<T> g{gx.data_ptr<T>(), cv.data_ptr<T>(), cw.data_ptr<T>(), cs.data_ptr<T>(),
                          accp, accp + MH, accp + 2 * MH, accp + 3 * MH};
    const AdLIFParams<T> p{alpha.data_ptr<T>(), oma.data_ptr<T>(), beta.data_ptr<T>(),
                           a.data_ptr<T>(), b.data_ptr<T>(), cs_coef.data_ptr<T>()};
    with_surrogate(surrogate, [&](auto tag) {
      constexpr int64_t S = decltype(tag)::value;
      auto step = [&](int64_t t, int64_t r0, int64_t r1) {
        const int64_t off = t * MH;
        if (t == 0) {
          adlif_backward_rows<S, true, T>(r0, r1, H, gop, vtp, wtp, v0p, w0p, s0p, cp, 0, g, p,
                                          th, q1, q2);
        } else {
          adlif_backward_rows<S, false, T>(r0, r1, H, gop + off, vtp + off, wtp + off,
                                           vtp + off - MH, wtp + off - MH, nullptr, cp + off,
                                           off, g, p, th, q1, q2);
        }
      };
      backward_over_time<S, T>(step, nT, M, H, weight, gx, cs, vtp, th, q1, q2);
    });
  });
  Tensor sums = acc.sum(1);  // [4, H]
  Tensor grad_w = pooled_empty({0}, cur.options());
  if (rec) {
    grad_w = recurrent_weight_grad(gx, v_trace, s0, theta);
  }
  return {gx, sums[0], sums[1], sums[2], sums[3], grad_w, cv, cw, cs};
}

// ------------------------------------------------------------------------------------
// Linear layer on event (spike) inputs:  y = x W^T (+ bias),  x: [N, K], W: [O, K]
//
// Below kLinearDensity non-zero inputs, y[r] is the sum of the rows of W^T picked by the
// non-zero x[r, j] (scaled by them, so dropout-scaled spikes work too) and dW^T[j] the sum of
// x[r, j] dy[r] over the same entries; above it, GEMMs. Any real x gives the product.
// With fewer outputs than event_min_outputs (e.g. a readout to a few classes) listing the
// non-zero inputs costs more than the GEMM it saves, so those layers always use GEMMs.
// ------------------------------------------------------------------------------------

constexpr double kLinearDensity = 0.25;
// Below this many rows (a streaming step has one) the weight's transposition costs more than
// the GEMM the events would save.
constexpr int64_t kEventMinRows = 16;

// Listing the events costs about as much as a GEMM into 64 outputs with the portable gather,
// into 8 with the AVX-512 one (float).
int64_t event_min_outputs(const Tensor& x) {
  return x.scalar_type() == at::kFloat && compress_gather<float>() ? 8 : 64;
}

template <typename T>
inline void event_grad_cols(int64_t j0, int64_t j1, int64_t N, int64_t K, int64_t O, const T* x,
                            const T* g, T* dwt) {
  for (int64_t r = 0; r < N; ++r) {
    const T* xr = x + r * K;
    const T* gr = g + r * O;
    for (int64_t j = j0; j < j1; ++j) {
      const T xj = xr[j];
      if (xj == T(0)) continue;
      T* d = dwt + j * O;
#pragma GCC ivdep
      for (int64_t h = 0; h < O; ++h) d[h] += xj * gr[h];
    }
  }
}

SPIKEKWS_CLONES void event_grad(int64_t j0, int64_t j1, int64_t N, int64_t K, int64_t O,
                                const float* x, const float* g, float* dwt) {
  event_grad_cols<float>(j0, j1, N, K, O, x, g, dwt);
}

SPIKEKWS_CLONES void event_grad(int64_t j0, int64_t j1, int64_t N, int64_t K, int64_t O,
                                const double* x, const double* g, double* dwt) {
  event_grad_cols<double>(j0, j1, N, K, O, x, g, dwt);
}

// Non-zero entries of x[0 .. n), counted in vectors (int32 lanes per block of 2^20).
template <typename T>
SPIKEKWS_INLINE int64_t count_nonzero_rows(const T* x, int64_t n) {
  int64_t total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += int64_t(1) << 20) {
    const int64_t i1 = std::min(n, i0 + (int64_t(1) << 20));
    int32_t acc = 0;
#pragma GCC ivdep
    for (int64_t i = i0; i < i1; ++i) acc += x[i] != T(0) ? 1 : 0;
    total += acc;
  }
  return total;
}

SPIKEKWS_CLONES int64_t count_nonzero(const float* x, int64_t n) {
  return count_nonzero_rows<float>(x, n);
}

SPIKEKWS_CLONES int64_t count_nonzero(const double* x, int64_t n) {
  return count_nonzero_rows<double>(x, n);
}

// Whether fewer than kLinearDensity of x's entries are non-zero. Counted in blocks, in
// order, stopping as soon as the count reaches the limit (dense features stop early); the
// answer depends on x alone.
bool events_sparse(const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return false;
  const double limit = kLinearDensity * static_cast<double>(n);
  int64_t nnz = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "events_sparse", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    constexpr int64_t kBlock = 65536;
    for (int64_t i0 = 0; i0 < n && static_cast<double>(nnz) < limit; i0 += kBlock) {
      nnz += count_nonzero(xp + i0, std::min(kBlock, n - i0));
    }
  });
  return static_cast<double>(nnz) < limit;
}

// bias: none, or [O] of dtype; `what` names it in the error.
void check_bias(const c10::optional<Tensor>& bias, int64_t O, at::ScalarType dtype,
                const char* what) {
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == O && bias->scalar_type() == dtype,
                "spikekws_scan: ", what, " of x's dtype");
  }
}

void check_linear(const Tensor& x, const Tensor& weight) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(),
              "spikekws_scan: linear x must be a contiguous [N, K] CPU tensor");
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1) &&
                  weight.scalar_type() == x.scalar_type(),
              "spikekws_scan: linear weight must be [O, K] of x's dtype");
}

// Dense product y = bias + x W^T for float on CPUs with AVX-512 (the GEMM of the library
// torch links may use narrower vectors on some CPUs). W^T is packed into panels of 32
// outputs ([panel][K][32], zero-padded); each 8-row tile of x times a panel accumulates in
// 16 registers with fused multiply-adds over k = 0 .. K-1 in order, starting from the bias.
// Tasks own blocks of row tiles and run every panel over them, the panel staying in cache.
#ifdef SPIKEKWS_X86_ISA
constexpr int64_t kPanel = 32;
constexpr int64_t kTileRows = 8;

template <int MR>
__attribute__((target("avx512f"))) inline void dense_tile(int64_t K, const float* a, int64_t lda,
                                                          const float* panel,
                                                          const float* bias, float* c,
                                                          int64_t ldc, __mmask16 m0,
                                                          __mmask16 m1) {
  __m512 acc0[MR], acc1[MR];
  const __m512 i0 = bias != nullptr ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 i1 = bias != nullptr ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc0[i] = i0;
    acc1[i] = i1;
  }
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_load_ps(panel + k * kPanel);
    const __m512 b1 = _mm512_load_ps(panel + k * kPanel + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + k]);
      acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
  }
}

__attribute__((target("avx512f"))) void dense_rows(int64_t rows, int64_t K, const float* a, int64_t lda,
                                                   const float* panel, const float* bias,
                                                   float* c, int64_t ldc, __mmask16 m0,
                                                   __mmask16 m1) {
  switch (rows) {
    case 8: dense_tile<8>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 7: dense_tile<7>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 6: dense_tile<6>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 5: dense_tile<5>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 4: dense_tile<4>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 3: dense_tile<3>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    case 2: dense_tile<2>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
    default: dense_tile<1>(K, a, lda, panel, bias, c, ldc, m0, m1); break;
  }
}

// W^T packed into panels of kPanel outputs ([P][K][kPanel], zero-padded) and the bias
// padded to P * kPanel (so that the masked loads of a partial panel stay in bounds).
struct DensePanels {
  Tensor packed;
  Tensor bias;  // undefined without bias
  int64_t P = 0, K = 0, O = 0;
};

DensePanels pack_dense_panels(const Tensor& weight, const Tensor& bias) {
  DensePanels d;
  d.K = weight.size(1);
  d.O = weight.size(0);
  d.P = (d.O + kPanel - 1) / kPanel;
  const int64_t K = d.K, O = d.O;
  const Tensor w = weight.contiguous();
  if (bias.defined()) {
    d.bias = pooled_zeros({d.P * kPanel}, weight.options());
    d.bias.narrow(0, 0, O).copy_(bias);
  }
  d.packed = pooled_empty({d.P, K, kPanel}, weight.options());
  const float* wp = w.data_ptr<float>();
  float* pp = d.packed.data_ptr<float>();
  at::parallel_for(0, d.P, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      for (int64_t j = 0; j < kPanel; ++j) {
        const int64_t o = p * kPanel + j;
        float* dst = pp + p * K * kPanel + j;
        if (o < O) {
          const float* src = wp + o * K;
          for (int64_t k = 0; k < K; ++k) dst[k * kPanel] = src[k];
        } else {
          for (int64_t k = 0; k < K; ++k) dst[k * kPanel] = 0.0f;
        }
      }
    }
  });
  return d;
}

// y[r] = bias + x[r] W^T for the row tiles [t0, t1) of x ([N, K]) into y ([N, O]), every
// panel over the tiles (the panel stays in cache).
void dense_tiles(const DensePanels& d, int64_t N, const float* x, int64_t ldx, float* y, int64_t t0,
                 int64_t t1) {
  const int64_t K = d.K, O = d.O;
  const float* pp = d.packed.data_ptr<float>();
  const float* bp = d.bias.defined() ? d.bias.data_ptr<float>() : nullptr;
  for (int64_t p = 0; p < d.P; ++p) {
    const int64_t width = std::min(kPanel, O - p * kPanel);
    const __mmask16 m0 = width >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << width) - 1);
    const __mmask16 m1 = width >= 32 ? 0xFFFF
                         : width <= 16 ? 0
                                       : static_cast<__mmask16>((1u << (width - 16)) - 1);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t * kTileRows;
      dense_rows(std::min(kTileRows, N - r), K, x + r * ldx, ldx, pp + p * K * kPanel,
                 bp == nullptr ? nullptr : bp + p * kPanel, y + r * O + p * kPanel, O, m0, m1);
    }
  }
}

// x [N, K] contiguous float, weight [O, K], bias [O] or undefined -> y [N, O].
Tensor dense_product_avx512(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t N = x.size(0), K = x.size(1), O = weight.size(0);
  const DensePanels d = pack_dense_panels(weight, bias);
  Tensor y = pooled_empty({N, O}, x.options());
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  at::parallel_for(0, tiles, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K)),
                   [&](int64_t t0, int64_t t1) { dense_tiles(d, N, xp, K, yp, t0, t1); });
  return y;
}
#endif

// y = x W^T (+ bias) by the AVX-512 product above for float where the CPU has it (and
// SPIKEKWS_SCAN_ISA does not cap it) and there are enough rows to repay packing the weight
// (a streaming step has one), else by torch's GEMM.
constexpr int64_t kDenseMinRows = 64;

// How a product x W^T (x [N, K], W [O, K]) is computed: sums of the weight rows of the
// events when x is sparse (and there are enough rows and outputs), else the AVX-512 dense
// kernel (float, enough rows), else torch's GEMM.
enum class LinearPath { kEvents, kDense512, kGemm };

LinearPath linear_path(const Tensor& x, const Tensor& weight) {
  if (x.size(0) >= kEventMinRows && weight.size(0) >= event_min_outputs(x) && events_sparse(x)) {
    return LinearPath::kEvents;
  }
#ifdef SPIKEKWS_X86_ISA
  if (x.scalar_type() == at::kFloat && cpu_vector_level() == 2 && x.size(0) >= kDenseMinRows &&
      x.size(1) > 0 && weight.size(0) > 0) {
    return LinearPath::kDense512;
  }
#endif
  return LinearPath::kGemm;
}

Tensor dense_product(const Tensor& x, const Tensor& weight, const c10::optional<Tensor>& bias,
                     LinearPath path) {
  const bool has_bias = bias.has_value() && bias->defined();
#ifdef SPIKEKWS_X86_ISA
  if (path == LinearPath::kDense512) {
    return dense_product_avx512(x, weight, has_bias ? *bias : Tensor());
  }
#endif
  return has_bias ? at::addmm(*bias, x, weight.t()) : at::mm(x, weight.t());
}

// Returns (y [N, O], whether the event path was taken).
std::tuple<Tensor, bool> event_linear_forward(const Tensor& x, const Tensor& weight,
                                              const c10::optional<Tensor>& bias) {
  check_linear(x, weight);
  const bool has_bias = bias.has_value() && bias->defined();
  check_bias(bias, weight.size(0), x.scalar_type(), "linear bias must be [O]");
  const LinearPath path = linear_path(x, weight);
  if (path != LinearPath::kEvents) return {dense_product(x, weight, bias, path), false};
  const int64_t N = x.size(0), K = x.size(1), O = weight.size(0);
  Tensor wt = pooled_transpose(weight);
  Tensor b = has_bias ? bias->contiguous() : Tensor();
  Tensor y = pooled_empty({N, O}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "event_linear_forward", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* wp = wt.data_ptr<T>();
    const T* bp = has_bias ? b.data_ptr<T>() : nullptr;
    T* yp = y.data_ptr<T>();
    at::parallel_for(0, N, row_grain(K + O), [&](int64_t r0, int64_t r1) {
      EventList<T>& list = event_scratch<T>();
      event_product<T>(r0, r1, K, O, xp, wp, bp, yp, list);
    });
  });
  return {y, true};
}

// ------------------------------------------------------------------------------------
// Fused layers (inference): spikes = neuron(x W^T + bias)
//
// The product is computed one step and one block of rows at a time, just before the scan
// step reads it, into a buffer of one step ([M, O]), instead of as a [T, M, O] tensor that
// the product writes to memory and the scan reads back (12.8 MB of traffic for the
// [100, 32, 512] layer of the benchmark, as long as the scan's own arithmetic). Every row is
// computed as the unfused product computes it (linear_path() picks the same path for the
// whole input), so spikes and states equal those of the two ops in turn, bit for bit on the
// event and AVX-512 paths.
// ------------------------------------------------------------------------------------
template <typename T>
struct InputProduct {
  static constexpr int64_t kFusedChunkBytes = 512 * 1024;
  LinearPath path;
  int64_t M, K, O;
  // [T, M, K]: contiguous, or (dense path only) the time-major view of a contiguous
  // [M, T, K] tensor, the batch-first features of a first layer, read in place
  Tensor x;
  bool batch_first = false;
  Tensor weight;  // [O, K]
  Tensor bias;    // [O] or undefined
  Tensor wt;      // event path: W^T [K, O]
#ifdef SPIKEKWS_X86_ISA
  DensePanels panels;  // AVX-512 path
#endif
  int64_t steps;   // per chunk: about kFusedChunkBytes of product, so that it stays in cache
  Tensor buf;      // [steps, M, O]: the current chunk's steps
  int64_t t0 = 0;  // first step in buf

  InputProduct(const Tensor& x3, const Tensor& w, const Tensor& b)
      : M(x3.size(1)), K(x3.size(2)), O(w.size(0)), x(x3), weight(w), bias(b) {
    batch_first = !x3.is_contiguous();
    path = linear_path(batch_first ? x3.transpose(0, 1).reshape({-1, K}) : x3.view({-1, K}), w);
    if (batch_first && path != LinearPath::kDense512) {
      x = x3.contiguous();
      batch_first = false;
    }
    if (path == LinearPath::kEvents) wt = pooled_transpose(w);
#ifdef SPIKEKWS_X86_ISA
    if (path == LinearPath::kDense512) panels = pack_dense_panels(w, b);
#endif
    const int64_t step_bytes = std::max<int64_t>(1, M * O * static_cast<int64_t>(sizeof(T)));
    steps = std::min(x3.size(0), std::max<int64_t>(1, kFusedChunkBytes / step_bytes));
    buf = pooled_empty({steps, M, O}, x3.options());
  }

  int64_t chunk(int64_t) const { return steps; }

  // y = x W^T + bias for steps [a, b): rows [a M, b M) of x viewed as [T M, K].
  void prepare(int64_t a, int64_t b) {
    t0 = a;
    const int64_t n = (b - a) * M;
    T* y = buf.data_ptr<T>();
#ifdef SPIKEKWS_X86_ISA
    if constexpr (std::is_same<T, float>::value) {
      if (batch_first) {  // per step: M rows T K apart
        const float* xp = x.data_ptr<float>();
        const int64_t sT = x.stride(0), sM = x.stride(1);
        const int64_t tiles = (M + kTileRows - 1) / kTileRows;
        at::parallel_for(0, (b - a) * tiles, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K)),
                         [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t step = i / tiles, tile = i % tiles;
            dense_tiles(panels, M, xp + (a + step) * sT, sM, y + step * M * O, tile, tile + 1);
          }
        });
        return;
      }
    }
#endif
    const T* xa = x.data_ptr<T>() + a * M * K;
    if (path == LinearPath::kEvents) {
      const T* wp = wt.data_ptr<T>();
      const T* bp = bias.defined() ? bias.data_ptr<T>() : nullptr;
      at::parallel_for(0, n, row_grain(K + O), [&](int64_t r0, int64_t r1) {
        event_product<T>(r0, r1, K, O, xa, wp, bp, y, event_scratch<T>());
      });
      return;
    }
#ifdef SPIKEKWS_X86_ISA
    if constexpr (std::is_same<T, float>::value) {
      if (path == LinearPath::kDense512) {
        const int64_t tiles = (n + kTileRows - 1) / kTileRows;
        at::parallel_for(0, tiles, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K)),
                         [&](int64_t i0, int64_t i1) { dense_tiles(panels, n, xa, K, y, i0, i1); });
        return;
      }
    }
#endif
    Tensor o = buf.view({-1, O}).narrow(0, 0, n);
    const Tensor xs = x.view({-1, K}).narrow(0, a * M, n);
    if (bias.defined()) {
      at::addmm_out(o, bias, xs, weight.t());
    } else {
      at::mm_out(o, xs, weight.t());
    }
  }

  const T* step(int64_t t) const { return buf.data_ptr<T>() + (t - t0) * M * O; }
};

// make_input for the fused layers: the product x W^T + b, a chunk of steps at a time.
auto product_input(const Tensor& x, const Tensor& w, const Tensor& b) {
  return [&x, &w, &b](auto tag) { return InputProduct<decltype(tag)>(x, w, b); };
}

// x [T, M, K] contiguous; linear weight [H, K], bias [H] or none, of x's dtype.
void check_fused_linear(const Tensor& x, const Tensor& lw, const c10::optional<Tensor>& lb) {
  TORCH_CHECK(x.dim() == 3 && x.device().is_cpu() &&
                  (x.is_contiguous() || x.transpose(0, 1).is_contiguous()),
              "spikekws_scan: fused layer x must be a [T, M, K] CPU tensor, contiguous or the "
              "transpose of a contiguous [M, T, K] one; got sizes ", x.sizes(), ", strides ",
              x.strides());
  TORCH_CHECK(lw.dim() == 2 && lw.size(1) == x.size(2) && lw.scalar_type() == x.scalar_type() &&
                  lw.device().is_cpu(),
              "spikekws_scan: fused layer weight must be [H, K] of x's dtype");
  check_bias(lb, lw.size(0), x.scalar_type(), "fused layer bias must be [H]");
}

// Returns (spikes [T, M, H], v_last, number of spikes as a float64 scalar).
std::tuple<Tensor, Tensor, Tensor> lif_linear_forward(const Tensor& x, const Tensor& lw,
                                              const c10::optional<Tensor>& lb, const Tensor& v0,
                                              const Tensor& s0, const Tensor& alpha,
                                              const c10::optional<Tensor>& weight, double theta) {
  check_fused_linear(x, lw, lb);
  const int64_t nT = x.size(0), M = x.size(1), H = lw.size(0);
  check_states(x, M, H, {&v0, &s0}, {&alpha}, weight);
  const Tensor w = lw.contiguous();
  const Tensor b = lb.has_value() && lb->defined() ? lb->contiguous() : Tensor();
  std::vector<double> counts(static_cast<size_t>(M), 0.0);
  auto out = lif_forward_impl(
      nT, M, H, x.options(),
      product_input(x, w, b), v0, s0, alpha, weight, theta, false, counts.data());
  return {std::get<0>(out), std::get<1>(out), total_count(counts)};
}

// Returns (spikes [T, M, H], v_last, w_last, number of spikes as a float64 scalar).
std::tuple<Tensor, Tensor, Tensor, Tensor> adlif_linear_forward(
    const Tensor& x, const Tensor& lw, const c10::optional<Tensor>& lb, const Tensor& v0,
    const Tensor& w0, const Tensor& s0, const Tensor& alpha, const Tensor& beta, const Tensor& a,
    const Tensor& b, const c10::optional<Tensor>& weight, double theta) {
  check_fused_linear(x, lw, lb);
  const int64_t nT = x.size(0), M = x.size(1), H = lw.size(0);
  check_states(x, M, H, {&v0, &w0, &s0}, {&alpha, &beta, &a, &b}, weight);
  const Tensor w = lw.contiguous();
  const Tensor bias = lb.has_value() && lb->defined() ? lb->contiguous() : Tensor();
  std::vector<double> counts(static_cast<size_t>(M), 0.0);
  auto out = adlif_forward_impl(
      nT, M, H, x.options(),
      product_input(x, w, bias), v0, w0, s0, alpha, beta, a, b, weight, theta, false,
      counts.data());
  return {std::get<0>(out), std::get<1>(out), std::get<2>(out), total_count(counts)};
}

// The arithmetic of folding an eval batch norm into the affine layer before it, given the
// per-output scale g = gamma / sqrt(var + eps) (computed by torch, whose sqrt and division
// need not round like the C library's): W' = W * g (per output, dim 0) and b' = (b - mean)
// * g + beta, elementwise operations that round alike everywhere, so the bits of
// layers/linear.py fold_batchnorm, in one call instead of several torch ones. Missing bias
// and beta are 0.
std::tuple<Tensor, Tensor> fold_scale(const Tensor& weight, const c10::optional<Tensor>& bias,
                                      const Tensor& mean, const Tensor& scale,
                                      const c10::optional<Tensor>& beta) {
  TORCH_CHECK(weight.dim() >= 1 && weight.device().is_cpu(),
              "spikekws_scan: fold_scale weight must be a CPU tensor [O, ...]");
  const int64_t O = weight.size(0);
  const int64_t inner = O > 0 ? weight.numel() / O : 0;
  auto vec = [&](const Tensor& v, const char* what) {
    TORCH_CHECK(v.dim() == 1 && v.size(0) == O && v.scalar_type() == weight.scalar_type() &&
                    v.device().is_cpu(),
                "spikekws_scan: fold_scale ", what, " must be [", O, "] of the weight's dtype");
    return v.contiguous();
  };
  const Tensor m = vec(mean, "mean"), g = vec(scale, "scale");
  const bool hb = bias.has_value() && bias->defined();
  const bool hbeta = beta.has_value() && beta->defined();
  const Tensor bi = hb ? vec(*bias, "bias") : Tensor();
  const Tensor be = hbeta ? vec(*beta, "beta") : Tensor();
  const Tensor w = weight.contiguous();
  Tensor w_out = at::empty_like(w);
  Tensor b_out = at::empty({O}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "fold_scale", [&] {
    using T = scalar_t;
    const T* wp = w.data_ptr<T>();
    const T* mp = m.data_ptr<T>();
    const T* gp = g.data_ptr<T>();
    T* wo = w_out.data_ptr<T>();
    T* bo = b_out.data_ptr<T>();
    for (int64_t o = 0; o < O; ++o) {
      const T go = gp[o];
      for (int64_t i = 0; i < inner; ++i) wo[o * inner + i] = wp[o * inner + i] * go;
      bo[o] = ((hb ? bi.data_ptr<T>()[o] : T(0)) - mp[o]) * go +
              (hbeta ? be.data_ptr<T>()[o] : T(0));
    }
  });
  return {w_out, b_out};
}

// dW = dy^T x ([O, K]) for the x of a forward that took the event path (sparse) or not.
Tensor event_linear_weight_grad(const Tensor& grad_y, const Tensor& x, bool sparse) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && grad_y.dim() == 2 &&
                  grad_y.size(0) == x.size(0) && grad_y.is_contiguous() &&
                  grad_y.scalar_type() == x.scalar_type(),
              "spikekws_scan: linear grad must be a contiguous [N, O] tensor of x's dtype");
  if (!sparse) return at::mm(grad_y.t(), x);
  const int64_t N = x.size(0), K = x.size(1), O = grad_y.size(1);
  Tensor dwt = pooled_zeros({K, O}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "event_linear_weight_grad", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* gp = grad_y.data_ptr<T>();
    T* dp = dwt.data_ptr<T>();
    at::parallel_for(0, K, 16, [&](int64_t j0, int64_t j1) {
      event_grad(j0, j1, N, K, O, xp, gp, dp);
    });
  });
  return pooled_transpose(dwt);
}

// ------------------------------------------------------------------------------------
// Dropout with a counter-based mask:  y_i = x_i * keep_i / (1 - p)
//
// keep_i = [u_i < (1 - p) 2^32] with u_i the high 32 bits of SplitMix64(seed + (i + 1) g),
// g the golden-ratio increment: a pure function of (seed, i), so the backward applies the
// same mask to the gradient from the seed alone (nothing saved), any thread count gives the
// same mask, and the loop vectorises (no generator state to carry).
// ------------------------------------------------------------------------------------

inline uint32_t mask_bits(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

template <typename T>
inline void dropout_range(int64_t i0, int64_t i1, const T* x, T* y, uint64_t seed,
                          uint64_t threshold, T scale) {
#pragma GCC ivdep
  for (int64_t i = i0; i < i1; ++i) {
    const bool keep = static_cast<uint64_t>(mask_bits(seed, static_cast<uint64_t>(i))) < threshold;
    y[i] = keep ? x[i] * scale : T(0);
  }
}

SPIKEKWS_CLONES void dropout_kernel(int64_t i0, int64_t i1, const float* x, float* y,
                                    uint64_t seed, uint64_t threshold, float scale) {
  dropout_range<float>(i0, i1, x, y, seed, threshold, scale);
}

SPIKEKWS_CLONES void dropout_kernel(int64_t i0, int64_t i1, const double* x, double* y,
                                    uint64_t seed, uint64_t threshold, double scale) {
  dropout_range<double>(i0, i1, x, y, seed, threshold, scale);
}

// x * mask(seed) / (1 - p) for 0 <= p < 1; the same call on the gradient is the backward.
Tensor masked_dropout(const Tensor& x, double p, int64_t seed) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), "spikekws_scan: dropout needs a "
              "contiguous CPU tensor");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "spikekws_scan: dropout p must be in [0, 1), got ", p);
  Tensor y = pooled_empty_like(x);
  const double keep = 1.0 - p;
  const uint64_t threshold =
      static_cast<uint64_t>(std::min(std::ldexp(keep, 32), 4294967296.0));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "masked_dropout", [&] {
    using T = scalar_t;
    const T scale = T(1) / static_cast<T>(keep);
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    at::parallel_for(0, x.numel(), 65536, [&](int64_t i0, int64_t i1) {
      dropout_kernel(i0, i1, xp, yp, static_cast<uint64_t>(seed), threshold, scale);
    });
  });
  return y;
}

// ------------------------------------------------------------------------------------
// LI:  v_t = alpha v_{t-1} + (1 - alpha) x_t
// ------------------------------------------------------------------------------------

template <typename T>
SPIKEKWS_INLINE void li_forward_rows(int64_t r0, int64_t r1, int64_t H, const T* x, const T* vp,
                                     T* vo, const T* alpha, const T* oma) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
#pragma GCC ivdep
    for (int64_t h = 0; h < H; ++h) {
      vo[o + h] = alpha[h] * vp[o + h] + oma[h] * x[o + h];
    }
  }
}

SPIKEKWS_CLONES void li_forward_kernel(int64_t r0, int64_t r1, int64_t H, const float* x,
                                       const float* vp, float* vo, const float* alpha,
                                       const float* oma) {
  li_forward_rows<float>(r0, r1, H, x, vp, vo, alpha, oma);
}

SPIKEKWS_CLONES void li_forward_kernel(int64_t r0, int64_t r1, int64_t H, const double* x,
                                       const double* vp, double* vo, const double* alpha,
                                       const double* oma) {
  li_forward_rows<double>(r0, r1, H, x, vp, vo, alpha, oma);
}

template <typename T>
inline void li_backward_rows(int64_t r0, int64_t r1, int64_t H, const T* gout, const T* x,
                             const T* vp, T* gx, T* cv, T* dalpha, const T* alpha, const T* oma) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * H;
#pragma GCC ivdep
    for (int64_t h = 0; h < H; ++h) {
      const int64_t i = o + h;
      const T gv = gout[i] + cv[i];
      dalpha[i] += gv * (vp[i] - x[i]);
      gx[i] = oma[h] * gv;
      cv[i] = alpha[h] * gv;
    }
  }
}

Tensor li_forward(const Tensor& x, const Tensor& v0, const Tensor& alpha) {
  check_inputs(x, {&v0}, {&alpha}, c10::nullopt);
  const int64_t nT = x.size(0), M = x.size(1), H = x.size(2), MH = M * H;
  Tensor trace = pooled_empty_like(x);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "li_forward", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* v0p = v0.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* op = oma.data_ptr<T>();
    T* vp = trace.data_ptr<T>();
    at::parallel_for(0, M, row_grain(nT * H, 65536), [&](int64_t r0, int64_t r1) {
      for (int64_t t = 0; t < nT; ++t) {
        const T* prev = t == 0 ? v0p : vp + (t - 1) * MH;
        li_forward_kernel(r0, r1, H, xp + t * MH, prev, vp + t * MH, ap, op);
      }
    });
  });
  return trace;
}

// Returns (grad_x, grad_alpha, grad_v0).
std::tuple<Tensor, Tensor, Tensor> li_backward(const Tensor& grad_trace, const Tensor& x,
                                               const Tensor& trace, const Tensor& v0,
                                               const Tensor& alpha) {
  check_inputs(x, {&v0}, {&alpha}, c10::nullopt);
  TORCH_CHECK(grad_trace.sizes() == x.sizes() && grad_trace.is_contiguous() &&
                  trace.sizes() == x.sizes() && trace.is_contiguous(),
              "spikekws_scan: li_backward shape mismatch");
  const int64_t nT = x.size(0), M = x.size(1), H = x.size(2), MH = M * H;
  Tensor gx = pooled_empty_like(x);
  Tensor cv = at::zeros_like(v0);
  Tensor dacc = at::zeros_like(v0);
  Tensor oma = at::rsub(alpha, 1.0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "li_backward", [&] {
    using T = scalar_t;
    const T* gop = grad_trace.data_ptr<T>();
    const T* xp = x.data_ptr<T>();
    const T* vp = trace.data_ptr<T>();
    const T* v0p = v0.data_ptr<T>();
    const T* ap = alpha.data_ptr<T>();
    const T* op = oma.data_ptr<T>();
    T* gxp = gx.data_ptr<T>();
    T* cvp = cv.data_ptr<T>();
    T* dap = dacc.data_ptr<T>();
    at::parallel_for(0, M, row_grain(nT * H, 65536), [&](int64_t r0, int64_t r1) {
      for (int64_t t = nT - 1; t >= 0; --t) {
        const T* prev = t == 0 ? v0p : vp + (t - 1) * MH;
        li_backward_rows<T>(r0, r1, H, gop + t * MH, xp + t * MH, prev, gxp + t * MH, cvp,
                            dap, ap, op);
      }
    });
  });
  return {gx, dacc.sum(0), cv};
}

}  // namespace

TORCH_LIBRARY(spikekws_scan, m) {
  m.def("lif_forward(Tensor x, Tensor v0, Tensor s0, Tensor alpha, Tensor? weight, float theta, "
        "bool save) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("lif_backward(Tensor grad_spikes, Tensor grad_v_last, Tensor cur, Tensor v_trace, "
        "Tensor v0, Tensor s0, Tensor alpha, Tensor? weight, float theta, bool detach_reset, "
        "int surrogate, float p1, float p2) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("adlif_forward(Tensor x, Tensor v0, Tensor w0, Tensor s0, Tensor alpha, Tensor beta, "
        "Tensor a, Tensor b, Tensor? weight, float theta, bool save) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("adlif_backward(Tensor grad_spikes, Tensor grad_v_last, Tensor grad_w_last, Tensor cur, "
        "Tensor v_trace, Tensor w_trace, Tensor v0, Tensor w0, Tensor s0, Tensor alpha, "
        "Tensor beta, Tensor a, Tensor b, Tensor? weight, float theta, bool detach_reset, "
        "int surrogate, float p1, float p2) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("event_linear_forward(Tensor x, Tensor weight, Tensor? bias) -> (Tensor, bool)");
  m.def("event_min_outputs(Tensor x) -> int");
  m.def("event_linear_weight_grad(Tensor grad_y, Tensor x, bool sparse) -> Tensor");
  m.def("masked_dropout(Tensor x, float p, int seed) -> Tensor");
  m.def("li_forward(Tensor x, Tensor v0, Tensor alpha) -> Tensor");
  m.def("li_backward(Tensor grad_trace, Tensor x, Tensor trace, Tensor v0, Tensor alpha) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("fold_scale(Tensor weight, Tensor? bias, Tensor mean, Tensor scale, Tensor? beta) "
        "-> (Tensor, Tensor)");
  m.def("lif_linear_forward(Tensor x, Tensor linear_weight, Tensor? linear_bias, Tensor v0, "
        "Tensor s0, Tensor alpha, Tensor? weight, float theta) -> (Tensor, Tensor, Tensor)");
  m.def("adlif_linear_forward(Tensor x, Tensor linear_weight, Tensor? linear_bias, Tensor v0, "
        "Tensor w0, Tensor s0, Tensor alpha, Tensor beta, Tensor a, Tensor b, Tensor? weight, "
        "float theta) -> (Tensor, Tensor, Tensor, Tensor)");
  // no tensor arguments: one kernel for every dispatch key
  m.def("pool_info() -> int[]", &pool_info);
  m.def("pool_release(int limit_bytes) -> int", &pool_release);
}

TORCH_LIBRARY_IMPL(spikekws_scan, CPU, m) {
  m.impl("lif_forward", &lif_forward);
  m.impl("lif_backward", &lif_backward);
  m.impl("adlif_forward", &adlif_forward);
  m.impl("adlif_backward", &adlif_backward);
  m.impl("fold_scale", &fold_scale);
  m.impl("lif_linear_forward", &lif_linear_forward);
  m.impl("adlif_linear_forward", &adlif_linear_forward);
  m.impl("event_linear_forward", &event_linear_forward);
  m.impl("event_min_outputs", &event_min_outputs);
  m.impl("event_linear_weight_grad", &event_linear_weight_grad);
  m.impl("masked_dropout", &masked_dropout);
  m.impl("li_forward", &li_forward);
  m.impl("li_backward", &li_backward);
}
