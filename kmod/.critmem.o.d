./.critmem.o.d: critmem.rs ../abi/critmem_abi.rs /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcore.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libkernel.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libffi.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcompiler_builtins.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init_internal.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libmacros.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbuild_error.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbindings.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy_derive.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libuapi.rmeta

critmem.o: critmem.rs ../abi/critmem_abi.rs /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcore.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libkernel.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libffi.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcompiler_builtins.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init_internal.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libmacros.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbuild_error.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbindings.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy.rmeta /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy_derive.so /root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libuapi.rmeta

critmem.rs:
../abi/critmem_abi.rs:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcore.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libkernel.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libffi.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libcompiler_builtins.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libpin_init_internal.so:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libmacros.so:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbuild_error.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libbindings.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy.rmeta:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libzerocopy_derive.so:
/root/.cache/critmem/kernel/45612bd3f887b2c8/rust/libuapi.rmeta:
