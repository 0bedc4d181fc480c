"""Files in, [0, 1] grey pairs out: image I/O, pair discovery, named data sets, the phantom."""

from .io import ImageReadError, load_image, load_pair, minmax_normalise, read_grey, to_uint8, write_npy, write_png
from .pairs import ImagePair, find_data_root, pairs_from_folders, read_split
from .datasets import PAIR_SETS, named_pairs
