// A spatial model with a GP surrogate prior (PriorVAE / PriorCVAE).
//
// z ~ N(0, I) in R^K; the field over all D grid cells is f = decoder(z) (a
// PriorVAE), or f = decoder(z, ell) with ell ~ Uniform(ell_lower, ell_upper)
// (a PriorCVAE, C = 1). eta = intercept + f + log_offset at the observed cells
// enters a Gaussian, Poisson (log link) or binomial (logit link) likelihood.
// The decoder weights come from `surrogate export` of a gp1d/gp2d run.
functions {
  #include decoder.stanfunctions
  #include gp.stanfunctions
}
data {
  // --- decoder, as written by `surrogate export` ---
  int<lower=1> K; // latent dimension
  int<lower=0, upper=1> C; // 1: conditioned on the lengthscale (PriorCVAE)
  int<lower=1> D; // number of grid cells (decoder outputs)
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
  // --- lengthscale prior (used when C = 1) ---
  real<lower=0> ell_lower; // lower bound of the uniform lengthscale prior
  real<lower=ell_lower> ell_upper; // upper bound of the uniform lengthscale prior
  // --- observations ---
  int<lower=0, upper=D> N_obs; // number of observed cells
  array[N_obs] int<lower=1, upper=D> obs_idx; // observed cells (distinct)
  int<lower=1, upper=3> likelihood; // 1 gaussian, 2 poisson, 3 binomial
  vector[likelihood == 1 ? N_obs : 0] y; // gaussian observations
  array[likelihood == 1 ? 0 : N_obs] int<lower=0> counts; // poisson/binomial counts
  array[likelihood == 3 ? N_obs : 0] int<lower=0> trials; // binomial trials
  vector[N_obs] log_offset; // added to the linear predictor (log exposure)
  real intercept_prior_mean; // normal prior on the intercept: mean
  real<lower=0> intercept_prior_sd; // normal prior on the intercept: sd
  real<lower=0> sigma_prior_scale; // half-normal prior scale of the gaussian sd
}
transformed data {
  if (C == 1 && !(ell_lower < ell_upper)) {
    reject("ell_lower must be below ell_upper for a PriorCVAE; found ",
           ell_lower, " and ", ell_upper);
  }
  // The likelihood needs the output layer at the observed cells only.
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
}
parameters {
  vector[K] z; // latent code
  array[C] real<lower=ell_lower, upper=ell_upper> ell; // lengthscale (C = 1)
  real intercept; // mean of the linear predictor
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
model {
  vector[H[L]] h = decoder_hidden(append_row(z, to_vector(ell)), L, W1, b1,
                                  W2, b2, W3, b3, W4, b4, hidden_activation);
  z ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept
                                     + output_activate(W_obs * h + b_obs,
                                                       output_activation)
                                     + log_offset, likelihood, y, counts,
                                     trials, sigma);
}
generated quantities {
  vector[D] f; // the field at every cell
  vector[N_obs] log_lik; // pointwise log-likelihood of the observations
  {
    f = output_activate(W_out
                        * decoder_hidden(append_row(z, to_vector(ell)), L,
                                         W1, b1, W2, b2, W3, b3, W4, b4,
                                         hidden_activation)
                        + b_out, output_activation);
    log_lik = observations_log_lik(intercept + f[obs_idx] + log_offset,
                                   likelihood, y, counts, trials, sigma);
  }
}

