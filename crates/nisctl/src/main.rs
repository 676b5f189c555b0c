//! `nisctl`: the operators' command line (being built; see issue 6).

fn main() {
    eprintln!("nisctl: not built yet");
    std::process::exit(2);
}
