// A spatial model with a GP surrogate prior (PriorVAE / PriorCVAE).
//
// z ~ N(0, I) in R^K; the field over all D grid cells is f = decoder(z) (a
// PriorVAE), or f = decoder(z, ell) with ell ~ Uniform(ell_lower, ell_upper)
// (a PriorCVAE, C = 1). eta = intercept + f + log_offset at the observed cells
// enters a Gaussian, Poisson (log link) or binomial (logit link) likelihood.
// The decoder weights (and a CVAE's linear path B L(ell) z, added to the
// decoder's output) come from `surrogate export` of a gp1d/gp2d run.
// Compile with the include path stan/include.
functions {
  #include decoder.stanfunctions
  #include gp.stanfunctions
}
data {
  // --- lengthscale prior (used when C = 1) ---
  real<lower=0> ell_lower; // lower bound of the uniform lengthscale prior
  real<lower=ell_lower> ell_upper; // upper bound of the uniform lengthscale prior
  #include decoder_data.stan
  #include linear_path_data.stan
  
  #include observation_cells_data.stan
  #include observation_values_data.stan
}
transformed data {
  if (C > 1) {
    reject("C must be 0 (PriorVAE) or 1 (PriorCVAE on the lengthscale); ",
           "found ", C);
  }
  if (C == 1 && !(ell_lower < ell_upper)) {
    reject("ell_lower must be below ell_upper for a PriorCVAE; found ",
           ell_lower, " and ", ell_upper);
  }
  check_widths(L, H);
  if (G > 0 && C != 1) {
    reject("a linear path (G > 0) needs a decoder conditioned on one value ",
           "(C = 1); found C = ", C);
  }
  check_observations(likelihood, counts, trials);
  // The likelihood needs the output layer at the observed cells only.
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
  matrix[G > 0 ? N_obs : 0, G > 0 ? K : 0] B_obs;
  if (G > 0) {
    B_obs = lin_basis[obs_idx];
  }
}
parameters {
  vector[K] z; // latent code
  array[C] real<lower=ell_lower, upper=ell_upper> ell; // lengthscale (C = 1)
  real intercept; // mean of the linear predictor
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
model {
  vector[N_obs] f_obs = decoded_field(z, ell, L, W1, b1, W2, b2, W3, b3, W4,
                                      b4, W_obs, b_obs, hidden_activation,
                                      output_activation, lin_knots, lin_w,
                                      lin_v, lin_u, B_obs);
  z ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + f_obs + log_offset,
                                     likelihood, y, counts, trials, sigma);
}
generated quantities {
  // the field at every cell
  vector[D] f = decoded_field(z, ell, L, W1, b1, W2, b2, W3, b3, W4, b4,
                              W_out, b_out, hidden_activation,
                              output_activation, lin_knots, lin_w, lin_v,
                              lin_u, lin_basis);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(intercept + f[obs_idx]
                                               + log_offset, likelihood, y,
                                               counts, trials, sigma);
}

