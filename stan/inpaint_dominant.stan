// The softmax class model of inpaint.stan on one piece of its parameter
// space: the region where class `dominant` has the largest class weight.
//
// The regions c = 1..C partition the space, and the inpainting posterior's
// well-separated modes sit in different regions, so each region is sampled
// on its own and the pieces are combined by their probabilities p(region c | y)
// (estimated from the draws; see surrogate/per_class.py). Same decoder data
// as inpaint.stan (`surrogate export`), plus `dominant`.
functions {
  #include decoder.stanfunctions
}
data {
  // --- decoder, as written by `surrogate export` ---
  int<lower=1> K; // latent dimension
  int<lower=2> C; // number of classes
  int<lower=1> D; // output dimension (pixels or grid cells)
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
  // --- observations ---
  int<lower=0, upper=D> N_obs; // number of observed outputs
  array[N_obs] int<lower=1, upper=D> obs_idx; // observed positions (distinct)
  vector[N_obs] y_obs; // observed values
  int<lower=0, upper=1> estimate_sigma; // 1: estimate the noise sd
  real<lower=0> sigma_fixed; // noise sd used when estimate_sigma = 0
  real<lower=0> sigma_prior_scale; // half-normal prior scale when estimated
  // --- the region ---
  int<lower=1, upper=C> dominant; // the class with the largest weight here
}
transformed data {
  if (!estimate_sigma && sigma_fixed <= 0) {
    reject("sigma_fixed must be positive when estimate_sigma = 0; found ",
           sigma_fixed);
  }
  if (estimate_sigma && sigma_prior_scale <= 0) {
    reject("sigma_prior_scale must be positive when estimate_sigma = 1; ",
           "found ", sigma_prior_scale);
  }
  int N_mis = D - N_obs; // number of missing outputs
  array[N_mis] int mis_idx = complement_index(obs_idx, D);
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
}
parameters {
  vector[K] z; // latent code
  vector[C - 1] rest; // logits of the other classes
  real<lower=0> lead; // how far the dominant logit lies above max(rest)
  vector<lower=0>[estimate_sigma] sigma_est; // noise sd, if estimated
}
transformed parameters {
  real<lower=0> sigma = estimate_sigma ? sigma_est[1] : sigma_fixed;
  // theta of inpaint.stan: latent code, then class logits
  vector[K + C] theta = append_row(z, dominant_logits(rest, lead, dominant));
}
model {
  vector[H[L]] h = decoder_hidden(decoder_input(theta, K, C), L, W1, b1, W2,
                                  b2, W3, b3, W4, b4, hidden_activation);
  theta ~ std_normal(); // (rest, lead) -> logits has Jacobian 1
  sigma_est ~ normal(0, sigma_prior_scale);
  y_obs ~ normal(output_activate(W_obs * h + b_obs, output_activation),
                 sigma);
}
generated quantities {
  vector[C] class_probs; // class weights fed to the decoder
  vector[D] y_hat; // decoded mean at every position
  vector[N_mis] y_mis; // decoded mean at the missing positions
  real log_lik; // log-likelihood of the observed values
  {
    vector[K + C] x = decoder_input(theta, K, C);
    class_probs = x[(K + 1) : (K + C)];
    y_hat = output_activate(W_out
                            * decoder_hidden(x, L, W1, b1, W2, b2, W3, b3,
                                             W4, b4, hidden_activation)
                            + b_out, output_activation);
    y_mis = y_hat[mis_idx];
    log_lik = normal_lpdf(y_obs | y_hat[obs_idx], sigma);
  }
}
