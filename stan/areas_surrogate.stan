// A map (areas, sites or a grid) with a surrogate spatial prior: PriorVAE,
// PriorCVAE or aggVAE, trained on a GP, ICAR, BYM2 or CAR prior on the domain.
//
// z ~ N(0, I) in R^K; the unit-scale field over all D areas is decoder(z), or
// decoder(z, c) with its hyperparameter c ~ Uniform(cond_lower, cond_upper)
// (a CVAE, C = 1: the lengthscale, CAR alpha or BYM2 rho). The field is
// f = sigma_field * decoder(.). At the observed areas, eta = intercept
// + X beta + f (+ an unstructured effect) + log_offset enters a Gaussian,
// Poisson (log link) or binomial (logit link) likelihood. Generated
// quantities give eta (without the offset) and rr = exp(eta) at every area.
// Compile with the include path stan/include.
functions {
  #include decoder.stanfunctions
  #include gp.stanfunctions
  
  #include areas.stanfunctions
}
data {
  // --- hyperparameter prior (used when C = 1) ---
  real cond_lower; // lower bound of the uniform prior on the condition
  real<lower=cond_lower> cond_upper; // upper bound
  #include decoder_data.stan
  #include linear_path_data.stan
  
  #include observation_cells_data.stan
  #include observation_values_data.stan
  
  #include areas_data.stan
}
transformed data {
  if (C > 1) {
    reject("C must be 0 (VAE) or 1 (CVAE on one hyperparameter); found ", C);
  }
  if (C == 1 && !(cond_lower < cond_upper)) {
    reject("cond_lower must be below cond_upper for a CVAE; found ",
           cond_lower, " and ", cond_upper);
  }
  check_widths(L, H);
  if (G > 0 && C != 1) {
    reject("a linear path (G > 0) needs a decoder conditioned on one value ",
           "(C = 1); found C = ", C);
  }
  check_observations(likelihood, counts, trials);
  // The likelihood needs the output layer at the observed areas only.
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
  matrix[G > 0 ? N_obs : 0, G > 0 ? K : 0] B_obs;
  if (G > 0) {
    B_obs = lin_basis[obs_idx];
  }
  matrix[N_obs, P] X_obs = X[obs_idx];
}
parameters {
  vector[K] z; // latent code
  array[C] real<lower=cond_lower, upper=cond_upper> cond; // hyperparameter (C = 1)
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial field
  vector[iid ? D : 0] u_raw; // standardised unstructured effects
  array[iid] real<lower=0> sigma_iid; // their sd
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
model {
  vector[N_obs] f_obs = sigma_field
                        * decoded_field(z, cond, L, W1, b1, W2, b2, W3, b3,
                                        W4, b4, W_obs, b_obs,
                                        hidden_activation, output_activation,
                                        lin_knots, lin_w, lin_v, lin_u,
                                        B_obs);
  vector[D] u = iid_effect(u_raw, sigma_iid, D);
  z ~ std_normal();
  // cond: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  beta ~ normal(0, beta_prior_sd);
  sigma_field ~ normal(0, field_sd_prior_scale);
  u_raw ~ std_normal();
  sigma_iid ~ normal(0, field_sd_prior_scale);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + X_obs * beta + f_obs
                                     + u[obs_idx] + log_offset, likelihood,
                                     y, counts, trials, sigma);
}
generated quantities {
  // the field at every area
  vector[D] f = sigma_field
                * decoded_field(z, cond, L, W1, b1, W2, b2, W3, b3, W4, b4,
                                W_out, b_out, hidden_activation,
                                output_activation, lin_knots, lin_w, lin_v,
                                lin_u, lin_basis);
  // the linear predictor (without the offset) and its exponential
  vector[D] eta = intercept + X * beta + f + iid_effect(u_raw, sigma_iid, D);
  vector[D] rr = exp(eta);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(eta[obs_idx] + log_offset,
                                               likelihood, y, counts, trials,
                                               sigma);
}

