// --- neighbourhood graph ---
int<lower=0> N_edges; // number of neighbour pairs
array[N_edges] int<lower=1, upper=D> node1; // first area of each pair
array[N_edges] int<lower=1, upper=D> node2; // second area of each pair
int<lower=0, upper=D> N_islands; // number of areas without neighbours
array[N_islands] int<lower=1, upper=D> island_idx; // the islands
int<lower=0> N_comp; // number of components of two or more areas
array[N_comp] int<lower=2> comp_size; // their sizes
array[D - N_islands] int<lower=1, upper=D> comp_members; // their areas, component after component
vector<lower=0>[D] scale; // scaling factor of each area's component (1 for islands)
