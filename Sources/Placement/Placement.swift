/// Rendezvous placement (see RendezvousPlacement).
