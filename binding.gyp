{
  # lth_native: the Node-API kernels of lth (see native/README.md).
  #
  # The addon itself is compiled for the baseline ISA. The AVX2+FMA and AVX-512
  # kernels live in their own static libraries, each compiled with its own -m flags
  # (gyp has no per-file flags), and are only called when the CPU supports them
  # (run-time dispatch in native/lth_native.cc). Nothing is built with -march=native.
  'target_defaults': {
    'cflags': ['-O3', '-fno-math-errno', '-fno-tree-loop-distribute-patterns', '-fvisibility=hidden', '-fPIC'],
    'cflags!': ['-O0', '-O2', '-Os'],
    'cflags_cc': ['-std=gnu++17'],
    'cflags_cc!': ['-std=gnu++14', '-std=gnu++1y'],
    'xcode_settings': {
      'GCC_OPTIMIZATION_LEVEL': '3',
      'OTHER_CFLAGS': ['-fno-math-errno'],
    },
  },
  'targets': [
    {
      'target_name': 'lth_kernels_avx512',
      'type': 'static_library',
      'sources': ['native/kernels_avx512.cc'],
      'conditions': [
        ['target_arch=="x64" or target_arch=="ia32"', {
          'cflags': ['-mavx512f', '-mavx2', '-mfma'],
          'xcode_settings': { 'OTHER_CFLAGS': ['-mavx512f', '-mavx2', '-mfma'] },
        }],
      ],
    },
    {
      'target_name': 'lth_kernels_avx2',
      'type': 'static_library',
      'sources': ['native/kernels_avx2.cc'],
      'conditions': [
        ['target_arch=="x64" or target_arch=="ia32"', {
          'cflags': ['-mavx2', '-mfma'],
          'xcode_settings': { 'OTHER_CFLAGS': ['-mavx2', '-mfma'] },
        }],
      ],
    },
    {
      'target_name': 'lth_native',
      'sources': [
        'native/lth_native.cc', 'native/pool.cc', 'native/gemm.cc', 'native/elementwise.cc', 'native/kernels_scalar.cc',
        'native/conv.cc', 'native/conv2d.cc', 'native/norm.cc', 'native/sparse_pattern.cc', 'native/sparse_kernels.cc', 'native/sparse_bindings.cc',
        'native/sparse_mlp.cc', 'native/sparse_conv.cc', 'native/dense_mlp.cc', 'native/select.cc', 'native/winograd.cc', 'native/seq.cc',
      ],
      'dependencies': ['lth_kernels_avx512', 'lth_kernels_avx2'],
      'cflags': ['-pthread'],
      'ldflags': ['-pthread'],
    },
  ],
}
