// Inpainting with a decoder prior (PriorVAE / PriorCVAE style).
//
// theta ~ N(0, I) in R^(K + C); z = theta[1:K]; class weights
// softmax(theta[K+1:K+C]) (none when C = 0); the decoder MLP maps (z, weights)
// to the mean of all D outputs, and only the observed outputs enter the
// Gaussian likelihood. The decoder weights come from `surrogate export`.
// Compile with the include path stan/include.
functions {
  #include decoder.stanfunctions
  #include inpaint.stanfunctions
}
data {
  #include decoder_data.stan
  #include inpaint_data.stan
}
transformed data {
  check_widths(L, H);
  check_noise(estimate_sigma, sigma_fixed, sigma_prior_scale);
  int N_mis = D - N_obs; // number of missing outputs
  array[N_mis] int mis_idx = complement_index(obs_idx, D);
  // The likelihood needs the output layer at the observed rows only.
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
}
parameters {
  vector[K + C] theta; // latent code, then class logits
  vector<lower=0>[estimate_sigma] sigma_est; // noise sd, if estimated
}
transformed parameters {
  real<lower=0> sigma = estimate_sigma ? sigma_est[1] : sigma_fixed;
}
model {
  theta ~ std_normal();
  sigma_est ~ normal(0, sigma_prior_scale);
  y_obs ~ normal(decoder_mean(decoder_input(theta, K, C), L, W1, b1, W2, b2,
                              W3, b3, W4, b4, W_obs, b_obs,
                              hidden_activation, output_activation),
                 sigma);
}
generated quantities {
  vector[K] z = theta[1 : K]; // latent code
  vector[C] class_probs; // class weights fed to the decoder
  vector[D] y_hat; // decoded mean at every position
  vector[N_mis] y_mis; // decoded mean at the missing positions
  vector[N_obs] log_lik; // pointwise log-likelihood of the observed values
  {
    vector[K + C] x = decoder_input(theta, K, C);
    if (C > 0) {
      class_probs = x[(K + 1) : (K + C)];
    }
    y_hat = decoder_mean(x, L, W1, b1, W2, b2, W3, b3, W4, b4, W_out, b_out,
                         hidden_activation, output_activation);
    y_mis = y_hat[mis_idx];
    for (n in 1 : N_obs) {
      log_lik[n] = normal_lpdf(y_obs[n] | y_hat[obs_idx[n]], sigma);
    }
  }
}

