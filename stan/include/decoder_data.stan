// --- decoder, as written by `surrogate export` ---
int<lower=1> K; // latent dimension
int<lower=0> C; // size of the condition (classes, or 1 for a lengthscale)
int<lower=1> D; // output dimension (pixels or cells)
int<lower=1, upper=4> L; // number of hidden layers
array[4] int<lower=0> H; // hidden widths, H[l] = 0 for l > L
matrix[H[1], K + C] W1; // hidden layer 1 weights, [out, in]
vector[H[1]] b1; // hidden layer 1 bias
matrix[H[2], H[1]] W2; // hidden layer 2 weights (empty if L < 2)
vector[H[2]] b2; // hidden layer 2 bias
matrix[H[3], H[2]] W3; // hidden layer 3 weights (empty if L < 3)
vector[H[3]] b3; // hidden layer 3 bias
matrix[H[4], H[3]] W4; // hidden layer 4 weights (empty if L < 4)
vector[H[4]] b4; // hidden layer 4 bias
matrix[D, H[L]] W_out; // output layer weights, [out, in]
vector[D] b_out; // output layer bias
int<lower=1, upper=4> hidden_activation; // 1 elu, 2 tanh, 3 relu, 4 softplus
int<lower=0, upper=1> output_activation; // 0 identity, 1 sigmoid
