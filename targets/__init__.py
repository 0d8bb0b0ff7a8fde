"""targets: exporters of IR networks to neuromorphic back ends (Lava, NetX HDF5, NIR)."""
