"""rnnkit.nn: recurrent cells and layers with torch.nn numerics and names.

>>> layer = LSTM(32, 256, num_layers=2, bidirectional=True, batch_first=True)
>>> y, (h, c) = layer(x, lengths=lengths)      # x: (batch, time, 32)
>>> y_t, state = LSTM(32, 64).step(x_t, state)  # streaming, x_t: (batch, 32)
"""
from rnnkit.nn.cells import Cell, GRUCell, I2HCell, LSTMCell, RNNCell
from rnnkit.nn.layers import GRU, LSTM, RNN, Recurrent, SequenceLayer, SimpleRNN

__all__ = ["Cell", "RNNCell", "LSTMCell", "GRUCell", "I2HCell", "RNN", "SimpleRNN", "LSTM", "GRU", "Recurrent", "SequenceLayer"]
