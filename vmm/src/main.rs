//! `vmm`: skeleton until the vmm issue fills it in.

fn main() {
    println!("vmm: critmem ABI version {}", critmem_abi::ABI_VERSION);
}
