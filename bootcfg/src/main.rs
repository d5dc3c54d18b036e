//! `critmem-boot`: skeleton until the bootcfg issue fills it in.

fn main() {
    println!("critmem-boot: not implemented yet");
}
