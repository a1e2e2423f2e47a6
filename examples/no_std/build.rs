//! Links `digits-firmware` as a bare binary (no C runtime, no C library) when the `firmware`
//! feature builds it.

fn main() {
    if std::env::var_os("CARGO_FEATURE_FIRMWARE").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        for bin in ["digits-firmware", "digits-firmware-f32", "digits-firmware-int8"] {
            for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
                println!("cargo:rustc-link-arg-bin={bin}={arg}");
            }
        }
    }
}
