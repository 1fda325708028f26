"""Package metadata comes from settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini')
cfg = cfg['DEFAULT']

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
console_scripts = cfg.get('console_scripts', '').split()

setuptools.setup(
    name=cfg['repo'],
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    license='Apache-2.0',
    python_requires='>=' + cfg['min_python'],
    packages=setuptools.find_packages(include=['sage_bench', 'sage_bench.*']),
    include_package_data=True,
    package_data={'sage_bench': ['resources/**/*', 'resources/*']},
    install_requires=requirements,
    extras_require={
        'dev': dev_requirements,
        # LLM serving on the CPU (compiles llama.cpp, ~5 min the first time; pip caches the wheel)
        'cpu-llm': ['llama-cpp-python[server]==0.3.36'],
        # LoRA SFT of a small LLM (training.llm_sft): peft on transformers; gguf reads the installed GGUF models into
        # transformers (and is what llama.cpp's convert_lora_to_gguf.py writes with); accelerate for transformers' loading
        'sft': ['peft==0.21.2', 'gguf==0.19.0', 'accelerate==1.15.0'],
        # GPU machines only: vLLM pulls CUDA builds of torch; install it in its own environment
        'gpu': ['vllm', 'peft==0.21.2'],
    },
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
