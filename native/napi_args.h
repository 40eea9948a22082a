// The Node-API argument reader every binding unit uses. A binding declares its arguments
// once, as a static table of ArgSpec (a name and a kind), and one Args object reads and
// type-checks them all when it is made:
//
//   constexpr ArgSpec kMatmulArgs[] = {arg::f32("a"), ..., arg::dim("m"), arg::flag("transA")};
//   Args<9> a(env, info, "matmul", kMatmulArgs);
//   if (!a.ok()) return nullptr;           // a TypeError or RangeError is pending
//   float* A = a[0].f32(); size_t la = a[0].len; int64_t m = a[3].dim(); ...
//   a.need("a", la, m, k, "m*k");          // length checks, after the table
//
// Every kernel reports a wrong argument the same way: a wrong type throws a TypeError,
// e.g. "matmul: c must be a Float32Array, got Float64Array", a wrong value or a short
// array a RangeError, e.g. "matmul: c has 10 elements, needs m*n = 12". The first
// failure throws; the checks after it do nothing and ok() stays false.
//
// Reading an argument costs one Node-API call when it is right (napi_get_typedarray_info
// for an array, napi_get_value_double for a number, ...): the fused training step's call
// runs on every batch.
#pragma once

#include <node_api.h>

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

namespace lth {

enum class ArgKind : uint8_t {
  F32,        // Float32Array
  F32OrNull,  // Float32Array, or null / undefined
  I32,        // Int32Array
  U8,         // Uint8Array
  U8OrNull,   // Uint8Array, or null / undefined
  F64,        // Float64Array
  F64OrNull,  // Float64Array, or null / undefined
  Dim,        // a size: an integer from `min` to 2^31
  Number,     // any number
  Flag,       // a boolean
  String,     // a string (the binding reads its text)
  Handle,     // an object wrapping a native object made by the export `maker`
};

struct ArgSpec {
  const char* name;
  ArgKind kind;
  int64_t min = 0;              // Dim: the smallest value allowed
  const char* maker = nullptr;  // Handle: the export that makes such objects
};

// Table entries.
namespace arg {
constexpr ArgSpec f32(const char* name) { return {name, ArgKind::F32}; }
constexpr ArgSpec f32_or_null(const char* name) { return {name, ArgKind::F32OrNull}; }
constexpr ArgSpec i32(const char* name) { return {name, ArgKind::I32}; }
constexpr ArgSpec u8(const char* name) { return {name, ArgKind::U8}; }
constexpr ArgSpec u8_or_null(const char* name) { return {name, ArgKind::U8OrNull}; }
constexpr ArgSpec f64(const char* name) { return {name, ArgKind::F64}; }
constexpr ArgSpec f64_or_null(const char* name) { return {name, ArgKind::F64OrNull}; }
constexpr ArgSpec dim(const char* name, int64_t min = 0) { return {name, ArgKind::Dim, min}; }
constexpr ArgSpec number(const char* name) { return {name, ArgKind::Number}; }
constexpr ArgSpec flag(const char* name) { return {name, ArgKind::Flag}; }
constexpr ArgSpec string(const char* name) { return {name, ArgKind::String}; }
constexpr ArgSpec handle(const char* name, const char* maker) { return {name, ArgKind::Handle, 0, maker}; }
}  // namespace arg

// The first part of every native object the addon wraps in a JavaScript object
// (napi_wrap): the export that made it (one of the addon's inline constant strings,
// compared by address), so that an object made by another export is refused.
struct Wrapped {
  const char* maker;
};

// One argument as read.
struct ArgValue {
  void* data;    // a typed array's elements (nullptr when it is empty or null); a Handle's object
  size_t len;    // a typed array's length (0 when null)
  double num;    // Number, Dim
  napi_value value;
  bool present;  // a typed array is given (not null)
  bool flag;     // Flag

  float* f32() const { return static_cast<float*>(data); }
  int32_t* i32() const { return static_cast<int32_t*>(data); }
  uint8_t* u8() const { return static_cast<uint8_t*>(data); }
  double* f64() const { return static_cast<double*>(data); }
  int64_t dim() const { return (int64_t)num; }
  template <class T>
  T* handle() const { return static_cast<T*>(static_cast<Wrapped*>(data)); }
};

// "a" or "an" before a type's name in an error message (an Int32Array, a Uint8Array).
inline const char* article(const char* name) { return name[0] == 'I' ? "an" : "a"; }

inline const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}

inline const char* value_type_name(napi_valuetype t) {
  switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
    default: return "value";
  }
}

// The arguments of one call and its failure state. Args<N> (a fixed table) and VarArgs (a
// variable count, read table by table) are the two ways to make one.
class ArgReader {
 public:
  ArgReader(const ArgReader&) = delete;
  ArgReader& operator=(const ArgReader&) = delete;

  bool ok() const { return ok_; }
  napi_env env() const { return env_; }
  // The number of arguments passed.
  size_t argc() const { return argc_; }
  napi_value arg(size_t i) const { return argv_[i]; }

  // Reads and checks arguments first .. first + n - 1 against specs[0 .. n) into out[0 ..
  // n), stopping at the first failure; false after a failure (now or before). The
  // arguments must have been fetched (first + n at most the capacity).
  bool read(const ArgSpec* specs, size_t n, ArgValue* out, size_t first = 0) {
    for (size_t j = 0; j < n && ok_; j++) read_one(specs[j], argv_[first + j], out[j]);
    return ok_;
  }

  // len >= needed, or throws "fn: name has len elements, needs what = needed".
  void need(const char* name, size_t len, unsigned __int128 needed, const char* what) {
    if (ok_ && (unsigned __int128)len < needed)
      fail(true, "%s has %zu elements, needs %s = %llu", name, len, what, (unsigned long long)needed);
  }
  void need(const char* name, size_t len, int64_t a, int64_t b, const char* what) {
    need(name, len, (unsigned __int128)(uint64_t)a * (uint64_t)b, what);
  }

  // Throws "fn: <message>", a RangeError if `range` else a TypeError; only the first
  // failure of a call throws.
  __attribute__((format(printf, 3, 4))) void fail(bool range, const char* fmt, ...) {
    if (!ok_) return;
    ok_ = false;
    char msg[512];
    int off = std::snprintf(msg, sizeof msg, "%s: ", fn_);
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg + off, sizeof msg - off, fmt, ap);
    va_end(ap);
    if (range) napi_throw_range_error(env_, nullptr, msg);
    else napi_throw_type_error(env_, nullptr, msg);
  }

 protected:
  ArgReader(napi_env env, const char* fn) : env_(env), fn_(fn) {}

  // Fetches up to `capacity` arguments into argv (the missing ones read as undefined) and
  // checks that at least `expected` were passed.
  void fetch(napi_callback_info info, napi_value* argv, size_t capacity, size_t expected) {
    argv_ = argv;
    argc_ = capacity;
    if (napi_get_cb_info(env_, info, &argc_, argv, nullptr, nullptr) != napi_ok) {
      argc_ = 0;
      fail(false, "cannot read the arguments");
      return;
    }
    if (argc_ < expected) fail(false, "expected %zu arguments, got %zu", expected, argc_);
  }

 private:
  void read_one(const ArgSpec& s, napi_value v, ArgValue& out) {
    out.value = v;
    switch (s.kind) {
      case ArgKind::F32: return read_array(s, v, napi_float32_array, false, out);
      case ArgKind::F32OrNull: return read_array(s, v, napi_float32_array, true, out);
      case ArgKind::I32: return read_array(s, v, napi_int32_array, false, out);
      case ArgKind::U8: return read_array(s, v, napi_uint8_array, false, out);
      case ArgKind::U8OrNull: return read_array(s, v, napi_uint8_array, true, out);
      case ArgKind::F64: return read_array(s, v, napi_float64_array, false, out);
      case ArgKind::F64OrNull: return read_array(s, v, napi_float64_array, true, out);
      case ArgKind::Dim:
        if (!read_number(s, v, out)) return;
        if (!(out.num >= (double)s.min && out.num <= 2147483648.0 && std::floor(out.num) == out.num))
          fail(true, s.min > 0 ? "%s must be a positive integer, got %.17g" : "%s must be a non-negative integer, got %.17g",
               s.name, out.num);
        return;
      case ArgKind::Number: read_number(s, v, out); return;
      case ArgKind::Flag:
        if (napi_get_value_bool(env_, v, &out.flag) != napi_ok) fail(false, "%s must be a boolean, got %s", s.name, type_of(v));
        return;
      case ArgKind::String:
        if (napi_valuetype vt = typeof_value(v); vt != napi_string)
          fail(false, "%s must be a string, got %s", s.name, value_type_name(vt));
        return;
      case ArgKind::Handle: {
        void* p = nullptr;
        if (napi_unwrap(env_, v, &p) != napi_ok || !p || static_cast<Wrapped*>(p)->maker != s.maker)
          fail(false, "%s must be an object made by this backend's %s()", s.name, s.maker);
        out.data = p;
        return;
      }
    }
  }

  // A typed array of type `want` (nullable: null / undefined give no array).
  void read_array(const ArgSpec& s, napi_value v, napi_typedarray_type want, bool nullable, ArgValue& out) {
    napi_typedarray_type t;
    size_t length = 0;
    void* data = nullptr;
    out.data = nullptr;
    out.len = 0;
    out.present = false;
    if (napi_get_typedarray_info(env_, v, &t, &length, &data, nullptr, nullptr) != napi_ok) {
      const napi_valuetype vt = typeof_value(v);
      if (nullable && (vt == napi_null || vt == napi_undefined)) return;
      fail(false, "%s must be %s %s%s, got %s", s.name, article(typed_array_name(want)), typed_array_name(want),
           nullable ? " or null" : "", value_type_name(vt));
      return;
    }
    if (t != want) {
      fail(false, "%s must be %s %s%s, got %s", s.name, article(typed_array_name(want)), typed_array_name(want),
           nullable ? " or null" : "", typed_array_name(t));
      return;
    }
    out.present = true;
    out.len = length;
    out.data = length ? data : nullptr;
  }

  bool read_number(const ArgSpec& s, napi_value v, ArgValue& out) {
    if (napi_get_value_double(env_, v, &out.num) == napi_ok) return true;
    fail(false, "%s must be a number, got %s", s.name, type_of(v));
    return false;
  }

  napi_valuetype typeof_value(napi_value v) {
    napi_valuetype vt = napi_undefined;
    napi_typeof(env_, v, &vt);
    return vt;
  }
  const char* type_of(napi_value v) { return value_type_name(typeof_value(v)); }

  napi_env env_;
  const char* fn_;
  napi_value* argv_ = nullptr;
  size_t argc_ = 0;
  bool ok_ = true;
};

// The N arguments of a binding with a fixed table, read and checked when made.
template <size_t N>
class Args : public ArgReader {
 public:
  Args(napi_env env, napi_callback_info info, const char* fn, const ArgSpec (&specs)[N]) : ArgReader(env, fn) {
    fetch(info, argv_, N, N);
    read(specs, N, v_);
  }
  const ArgValue& operator[](size_t i) const { return v_[i]; }

 private:
  napi_value argv_[N];
  ArgValue v_[N] = {};
};

// The arguments of a binding that takes a variable number (at least `expected`); the
// binding reads them with read(), one table at a time.
class VarArgs : public ArgReader {
 public:
  VarArgs(napi_env env, napi_callback_info info, const char* fn, size_t expected) : ArgReader(env, fn) {
    size_t argc = 0;
    if (napi_get_cb_info(env, info, &argc, nullptr, nullptr, nullptr) != napi_ok) argc = 0;
    argv_.resize(argc > expected ? argc : expected);
    fetch(info, argv_.data(), argv_.size(), expected);
  }

 private:
  std::vector<napi_value> argv_;
};

// Whether byte ranges [p, p+pn) and [q, q+qn) overlap (an output must not alias an input).
inline bool overlaps(const void* p, size_t pn, const void* q, size_t qn) {
  if (!p || !q || !pn || !qn) return false;
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + qn && b < a + pn;
}

inline napi_value undefined_value(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

inline napi_value number_value(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

// A wrapped native object that points into typed arrays it was made from: it holds a
// reference to each of them, so that their memory outlives it.
struct HoldsArgs : Wrapped {
  HoldsArgs(const char* maker, napi_env e) : Wrapped{maker}, env(e) {}
  HoldsArgs(const HoldsArgs&) = delete;
  HoldsArgs& operator=(const HoldsArgs&) = delete;
  ~HoldsArgs() {
    for (napi_ref r : refs) napi_delete_reference(env, r);
  }
  napi_env env;
  std::vector<napi_ref> refs;
};

// A JavaScript object wrapping `obj`, which it then owns (deleted when the object is
// collected), after `obj` took a reference to every object argument of the call `a`;
// nullptr with a pending error when it cannot be made.
template <class T>
napi_value wrap_holding_args(ArgReader& a, std::unique_ptr<T> obj) {
  napi_env env = a.env();
  for (size_t i = 0; i < a.argc(); i++) {
    napi_valuetype vt;
    napi_typeof(env, a.arg(i), &vt);
    if (vt != napi_object) continue;
    napi_ref r;
    if (napi_create_reference(env, a.arg(i), 1, &r) == napi_ok) obj->refs.push_back(r);
  }
  napi_value handle;
  napi_create_object(env, &handle);
  if (napi_wrap(env, handle, static_cast<Wrapped*>(obj.get()),
                [](napi_env, void* d, void*) { delete static_cast<T*>(static_cast<Wrapped*>(d)); }, nullptr,
                nullptr) != napi_ok) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "%s: cannot wrap the handle", obj->maker);
    napi_throw_error(env, nullptr, msg);
    return nullptr;
  }
  obj.release();
  return handle;
}

// A function export: its name and callback.
struct Export {
  const char* name;
  napi_callback fn;
};

// Adds the functions to `exports`; false (with a pending exception) on failure.
template <size_t N>
bool define_exports(napi_env env, napi_value exports, const Export (&fns)[N]) {
  napi_property_descriptor props[N];
  for (size_t i = 0; i < N; i++) props[i] = {fns[i].name, nullptr, fns[i].fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr};
  return napi_define_properties(env, exports, N, props) == napi_ok;
}

}  // namespace lth
