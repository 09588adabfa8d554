//! `kubectl signalman`: plan, watch and steer release trains.

fn main() {
    eprintln!("kubectl-signalman: not built yet");
    std::process::exit(2);
}
