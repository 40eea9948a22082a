// Argument checking for the addon's Node-API bindings (lth_native.cc, conv.cc,
// sparse.cc): one Args class, so every kernel reports a wrong argument the same way,
// e.g. "matmul: c must be a Float32Array, got Float64Array". Include inside an
// anonymous namespace, after <node_api.h>, <cmath>, <cstdarg>, <cstdint> and <cstdio>.
#pragma once

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

// The arguments of one call; the first failure throws (TypeError for a wrong type,
// RangeError for a wrong value), later accessors return harmless defaults and ok()
// stays false.
class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* fn, size_t expected) : env_(env), fn_(fn) {
    argc_ = kMax;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) {
      fail(false, "cannot read the arguments");
      return;
    }
    if (argc_ < expected) fail(false, "expected %zu arguments, got %zu", expected, argc_);
  }
  bool ok() const { return ok_; }
  napi_env env() const { return env_; }
  napi_value arg(size_t i) const { return argv_[i]; }
  // The number of arguments passed (at most 128 are read).
  size_t argc() const { return argc_ < kMax ? argc_ : kMax; }

  // A typed array of the given type (nullable: null/undefined give nullptr, and *present,
  // if given, says which). One Node-API call when the argument is right: the training
  // step reads some forty arrays per call.
  void* array(size_t i, const char* name, napi_typedarray_type want, size_t* len, bool nullable = false,
              bool* present = nullptr) {
    *len = 0;
    if (present) *present = false;
    if (!ok_) return nullptr;
    napi_typedarray_type t;
    size_t length = 0;
    void* data = nullptr;
    const char* wantName = typed_array_name(want);
    if (napi_get_typedarray_info(env_, argv_[i], &t, &length, &data, nullptr, nullptr) != napi_ok) {
      napi_valuetype vt;
      napi_typeof(env_, argv_[i], &vt);
      if (nullable && (vt == napi_null || vt == napi_undefined)) return nullptr;
      fail(false, "%s must be a %s%s, got %s", name, wantName, nullable ? " or null" : "", value_type_name(vt));
      return nullptr;
    }
    if (t != want) {
      fail(false, "%s must be a %s%s, got %s", name, wantName, nullable ? " or null" : "", typed_array_name(t));
      return nullptr;
    }
    if (present) *present = true;
    *len = length;
    return length ? data : nullptr;
  }
  float* f32(size_t i, const char* name, size_t* len) {
    return static_cast<float*>(array(i, name, napi_float32_array, len));
  }
  float* f32OrNull(size_t i, const char* name, size_t* len, bool* present) {
    return static_cast<float*>(array(i, name, napi_float32_array, len, true, present));
  }
  int32_t* i32(size_t i, const char* name, size_t* len) {
    return static_cast<int32_t*>(array(i, name, napi_int32_array, len));
  }

  double number(size_t i, const char* name) {
    if (!ok_) return 0;
    double d = 0;
    if (napi_get_value_double(env_, argv_[i], &d) != napi_ok) {
      napi_valuetype vt;
      napi_typeof(env_, argv_[i], &vt);
      fail(false, "%s must be a number, got %s", name, value_type_name(vt));
      return 0;
    }
    return d;
  }
  // A size: an integer from `min` to 2^31.
  int64_t dim(size_t i, const char* name, int64_t min = 0) {
    double d = number(i, name);
    if (!ok_) return 0;
    if (!(d >= (double)min && d <= 2147483648.0 && std::floor(d) == d)) {
      fail(true, min > 0 ? "%s must be a positive integer, got %.17g" : "%s must be a non-negative integer, got %.17g",
           name, d);
      return 0;
    }
    return (int64_t)d;
  }
  bool flag(size_t i, const char* name) {
    if (!ok_) return false;
    bool b = false;
    if (napi_get_value_bool(env_, argv_[i], &b) != napi_ok) {
      napi_valuetype vt;
      napi_typeof(env_, argv_[i], &vt);
      fail(false, "%s must be a boolean, got %s", name, value_type_name(vt));
      return false;
    }
    return b;
  }
  // len >= needed, or throws "fn: name has len elements, needs what = needed".
  void need(const char* name, size_t len, unsigned __int128 needed, const char* what) {
    if (ok_ && (unsigned __int128)len < needed)
      fail(true, "%s has %zu elements, needs %s = %llu", name, len, what, (unsigned long long)needed);
  }
  void need(const char* name, size_t len, int64_t a, int64_t b, const char* what) {
    need(name, len, (unsigned __int128)(uint64_t)a * (uint64_t)b, what);
  }

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

 private:
  static constexpr size_t kMax = 128;
  napi_env env_;
  const char* fn_;
  size_t argc_ = 0;
  napi_value argv_[kMax] = {};
  bool ok_ = true;
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
